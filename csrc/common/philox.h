// Counter-based Philox4x32-10 (Salmon et al., SC 2011), host and device, bit-identical to Triton's
// tl.rand(seed, offset) for int64 offsets (triton/language/random.py): counter (offset low word, offset
// high word, 0, 0), key (seed low word, seed high word), ten rounds, first output word; the word read as
// int32, x < 0 -> -x - 1 (= ~x), times 2^-31 rounded to float32. So one (seed, offset) gives the same
// uniform on the CPU, CUDA and Triton kernels, and a backward pass regenerates a dropout mask for free.
#pragma once
#include "common/hostdevice.h"

namespace fastgan {

constexpr uint32_t kPhiloxRoundA = 0xD2511F53u, kPhiloxRoundB = 0xCD9E8D57u;
constexpr uint32_t kPhiloxKeyA = 0x9E3779B9u, kPhiloxKeyB = 0xBB67AE85u;
// (2^24 - 1) / 2^24 * 2^-31 = 4.6566127342e-10f: the largest scale with (2^31 - 1) * scale < 1 in float32.
constexpr float kUintToUniform = 0x1.fffffep-32f;

// Low word of a * b; the high word goes to *hi. Written on 64-bit products so the CPU loop vectorises.
FASTGAN_HD uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t product = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(product >> 32);
  return static_cast<uint32_t>(product);
}

// First output word of Philox4x32-10 for counter (offset, 0, 0) and key seed.
FASTGAN_HD uint32_t philox_word(uint64_t seed, uint64_t offset) {
  uint32_t c0 = static_cast<uint32_t>(offset), c1 = static_cast<uint32_t>(offset >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    uint32_t hi_b, hi_a;
    const uint32_t lo_b = philox_mulhilo(kPhiloxRoundB, c2, &hi_b);
    const uint32_t lo_a = philox_mulhilo(kPhiloxRoundA, c0, &hi_a);
    c0 = hi_b ^ c1 ^ k0;
    c1 = lo_b;
    c2 = hi_a ^ c3 ^ k1;
    c3 = lo_a;
    k0 += kPhiloxKeyA;
    k1 += kPhiloxKeyB;
  }
  return c0;
}

// Uniform float in [0, 1), as tl.rand(seed, offset).
FASTGAN_HD float philox_uniform(uint64_t seed, uint64_t offset) {
  const int32_t x = static_cast<int32_t>(philox_word(seed, offset));
  return static_cast<float>(x < 0 ? ~x : x) * kUintToUniform;
}

}  // namespace fastgan
