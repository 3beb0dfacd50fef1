// CPU kernels of maxout + dropout. Rows (or, over a channel dim, lines (r, u) of [inner] positions) are
// split across threads with at::parallel_for; inside one the units (positions) go in chunks: loops over
// the pieces take the max, one fills the chunk's Philox uniforms (integer arithmetic that the compiler
// vectorises) and one applies the mask. Every loop is branch-free.
#include "cpu/maxout_cpu.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

#include "common/checks.h"
#include "common/maxout_math.h"
#include "cpu/avx512_dispatch.h"
#include "cpu/dense_linear.h"

namespace fastgan {
namespace {

constexpr int64_t kChunk = 256;   // units per inner chunk: the uniforms stay in L1
constexpr int64_t kStage = 2048;  // pieces per transposed chunk (16 KB of double)

// Philox uniforms for element indices index .. index + n - 1, philox_uniform's arithmetic in a loop.
void fill_uniforms_generic(float* out, int64_t n, uint64_t seed, uint64_t index) {
  for (int64_t j = 0; j < n; ++j) out[j] = philox_uniform(seed, index + j);
}

#ifdef FASTGAN_AVX512_DISPATCH
// The same words for 16 counters at once, written out: gcc's vectorisation of philox_word's 64-bit products
// spends ~400 instructions on 16 lanes (vpmullq and permutes between 32- and 64-bit lanes); here each
// round is 4 vpmuludq, shifts and blends: the 24k uniforms of the paper's layer at batch 100 take 25 instead
// of 52 us on one core. Bit-identical to the generic loop (the tests compare the masks with the reference's
// and Triton's, across a counter's 2^32 carry). philox_uniform16 gives counters first .. first + 15.
FASTGAN_TARGET_AVX512 inline __m512 philox_uniform16(uint64_t seed, uint64_t first) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i round_a = _mm512_set1_epi32(static_cast<int>(kPhiloxRoundA));
  const __m512i round_b = _mm512_set1_epi32(static_cast<int>(kPhiloxRoundB));
  constexpr __mmask16 kOdd = 0xAAAA;
  __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(first)), lane);
  const __m512i high = _mm512_set1_epi32(static_cast<int>(first >> 32));
  // the lanes whose low word wrapped past 2^32 carry into the high word
  __m512i c1 = _mm512_mask_add_epi32(high, _mm512_cmplt_epu32_mask(c0, lane), high, _mm512_set1_epi32(1));
  __m512i c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#pragma GCC unroll 10
  for (int round = 0; round < 10; ++round) {
    // 32 x 32 -> 64-bit products of the even lanes, and of the odd lanes shifted down
    const __m512i a_even = _mm512_mul_epu32(c0, round_a), a_odd = _mm512_mul_epu32(_mm512_srli_epi64(c0, 32), round_a);
    const __m512i b_even = _mm512_mul_epu32(c2, round_b), b_odd = _mm512_mul_epu32(_mm512_srli_epi64(c2, 32), round_b);
    const __m512i hi_a = _mm512_mask_blend_epi32(kOdd, _mm512_srli_epi64(a_even, 32), a_odd);
    const __m512i lo_a = _mm512_mask_blend_epi32(kOdd, a_even, _mm512_slli_epi64(a_odd, 32));
    const __m512i hi_b = _mm512_mask_blend_epi32(kOdd, _mm512_srli_epi64(b_even, 32), b_odd);
    const __m512i lo_b = _mm512_mask_blend_epi32(kOdd, b_even, _mm512_slli_epi64(b_odd, 32));
    c0 = _mm512_ternarylogic_epi32(hi_b, c1, _mm512_set1_epi32(static_cast<int>(k0)), 0x96);  // a ^ b ^ c
    c1 = lo_b;
    c2 = _mm512_ternarylogic_epi32(hi_a, c3, _mm512_set1_epi32(static_cast<int>(k1)), 0x96);
    c3 = lo_a;
    k0 += kPhiloxKeyA;
    k1 += kPhiloxKeyB;
  }
  // philox_uniform: the word as int32, x < 0 -> ~x (x ^ its sign mask), to float, times 2^-31
  const __m512i folded = _mm512_xor_si512(c0, _mm512_srai_epi32(c0, 31));
  return _mm512_mul_ps(_mm512_cvtepi32_ps(folded), _mm512_set1_ps(kUintToUniform));
}

FASTGAN_TARGET_AVX512 void fill_uniforms_avx512(float* out, int64_t n, uint64_t seed, uint64_t index) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) _mm512_storeu_ps(out + j, philox_uniform16(seed, index + j));
  fill_uniforms_generic(out + j, n - j, seed, index + j);
}

void fill_uniforms(float* out, int64_t n, uint64_t seed, uint64_t index) {
  if (has_avx512()) return fill_uniforms_avx512(out, n, seed, index);
  fill_uniforms_generic(out, n, seed, index);
}
#else
void fill_uniforms(float* out, int64_t n, uint64_t seed, uint64_t index) { fill_uniforms_generic(out, n, seed, index); }
#endif

// take ? a : b computed on the bits. gcc compiles ?: on floats into branches, which mispredict on random
// masks and argmaxes: the backward ran 5-10x slower with them (11.6 vs 1.2 ms for 1024 x 1200 x 5, p = 0),
// and the forward's mask loop took half of its time.
template <typename scalar_t>
scalar_t select(bool take, scalar_t a, scalar_t b) {
  using bits_t = std::conditional_t<sizeof(scalar_t) == 4, uint32_t, uint64_t>;
  bits_t ab, bb;
  std::memcpy(&ab, &a, sizeof(a));
  std::memcpy(&bb, &b, sizeof(b));
  const bits_t mask = bits_t(0) - static_cast<bits_t>(take);
  const bits_t r = (ab & mask) | (bb & ~mask);
  scalar_t out;
  std::memcpy(&out, &r, sizeof(out));
  return out;
}

// n <= kChunk lanes whose K pieces lie piece-major (piece k of lane j at pieces[k * stride + j]): the max
// runs over contiguous lanes, k outer, and vectorises; then the dropout of the lanes, whose Philox element
// indices are index .. index + n - 1, and the store.
template <typename scalar_t>
void maxout_dropout_lanes(const scalar_t* __restrict__ pieces, int64_t stride, int64_t n, int64_t K,
                          const DropoutParams& d, uint64_t index, scalar_t* __restrict__ y,
                          int8_t* __restrict__ argmax) {
  const float p = d.p;
  const scalar_t scale = static_cast<scalar_t>(d.scale);
  scalar_t best[kChunk];
  int8_t arg[kChunk];
  float uniform[kChunk];
  for (int64_t j = 0; j < n; ++j) {
    best[j] = pieces[j];
    arg[j] = 0;
  }
  for (int64_t k = 1; k < K; ++k)
    for (int64_t j = 0; j < n; ++j) {
      const scalar_t v = pieces[k * stride + j];
      const bool take = maxout_takes(v, best[j]);
      best[j] = take ? v : best[j];
      arg[j] = take ? static_cast<int8_t>(k) : arg[j];
    }
  if (p > 0) {
    fill_uniforms(uniform, n, d.seed, index);
    for (int64_t j = 0; j < n; ++j) best[j] = select(uniform[j] > p, best[j] * scale, scalar_t(0));
  }
  for (int64_t j = 0; j < n; ++j) {
    y[j] = best[j];
    argmax[j] = arg[j];
  }
}

// Units [0, units) of one row: z points at the row's first piece, y/argmax at its first unit; `index` is
// the Philox element index of unit 0. A chunk of units is first transposed to piece-major order, so the
// max runs over contiguous lanes, k outer, and vectorises (2.4 ms for 1024 x 1200 x 5 floats on one core,
// against 3.8 ms for torch's amax and ~20 ms for the unit-by-unit loop, which gcc leaves scalar).
template <typename scalar_t>
void maxout_dropout_row_generic(const scalar_t* __restrict__ z, int64_t units, int64_t K, const DropoutParams& d,
                                uint64_t index, scalar_t* __restrict__ y, int8_t* __restrict__ argmax) {
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(kChunk, kStage / K));
  scalar_t staged[kStage];
  for (int64_t u0 = 0; u0 < units; u0 += chunk) {
    const int64_t n = std::min(chunk, units - u0);
    const scalar_t* zc = z + u0 * K;
    for (int64_t j = 0; j < n; ++j)
      for (int64_t k = 0; k < K; ++k) staged[k * n + j] = zc[j * K + k];
    maxout_dropout_lanes(staged, n, n, K, d, index + u0, y + u0, argmax + u0);
  }
}

#ifdef FASTGAN_AVX512_DISPATCH
// Where the pieces of 16 units of K <= 16 interleaved pieces lie in their K vectors of 16 floats (element
// e = jK + k is piece k of unit j): the permutes that gather a piece of all 16 units, and the unit and piece
// of each element, to scatter them back. It depends on K only; building it per row cost as much as the
// permutes, so each thread keeps the last one.
constexpr int64_t kMaxInterleavedPieces = 16;  // K vectors of 16 floats for 16 units

struct InterleavedPieces {
  // Vector pair q holds elements 32q .. 32q + 31; lane j of piece k comes from the pair holding element
  // jK + k, at index_in_pair[k][q] within the pair, where from_pair[k][q] says so.
  __m512i index_in_pair[kMaxInterleavedPieces][kMaxInterleavedPieces / 2];
  __mmask16 from_pair[kMaxInterleavedPieces][kMaxInterleavedPieces / 2];
  __m512i unit_of[kMaxInterleavedPieces], piece_of[kMaxInterleavedPieces];  // of elements 16m .. 16m + 15
};

// Whether float rows of K pieces run the AVX-512 row kernels below (the others: the generic rows).
inline bool avx512_rows(int64_t K) { return K <= kMaxInterleavedPieces && has_avx512(); }

FASTGAN_TARGET_AVX512 const InterleavedPieces& interleaved_pieces(int64_t K) {
  thread_local int64_t built_for = 0;
  thread_local InterleavedPieces layout;
  if (built_for == K) return layout;
  alignas(64) int32_t lanes[16], units[16], pieces[16];
  for (int64_t k = 0; k < K; ++k)
    for (int64_t q = 0; q < (K + 1) / 2; ++q) {
      __mmask16 mask = 0;
      for (int j = 0; j < 16; ++j) {
        const int64_t at = j * K + k - 32 * q;
        lanes[j] = static_cast<int32_t>(at & 31);
        if (at >= 0 && at < 32) mask |= static_cast<__mmask16>(1u << j);
      }
      layout.index_in_pair[k][q] = _mm512_load_si512(lanes);
      layout.from_pair[k][q] = mask;
    }
  for (int64_t m = 0; m < K; ++m) {
    for (int l = 0; l < 16; ++l) {
      units[l] = static_cast<int32_t>((16 * m + l) / K);
      pieces[l] = static_cast<int32_t>((16 * m + l) % K);
    }
    layout.unit_of[m] = _mm512_load_si512(units);
    layout.piece_of[m] = _mm512_load_si512(pieces);
  }
  built_for = K;
  return layout;
}

// The float row for K <= 16, 16 units at a time and all in registers: piece k of the 16 units is picked from
// their K vectors by (K+1)/2 two-vector permutes (InterleavedPieces), the running max and argmax follow
// maxout_takes, and the dropout draws philox_uniform16. The paper's 100 x 240 x 5 forward on one core
// took 39 us at p = 0 and 64 us at p = 0.5 through maxout_dropout_row_generic (perf put 3/4 of the p = 0
// time in its transposing copy, which gcc leaves scalar for K = 5); it takes 24 and 44 us here.
FASTGAN_TARGET_AVX512 void maxout_dropout_row_avx512(const float* __restrict__ z, int64_t units, int64_t K,
                                                     const DropoutParams& d, uint64_t index, float* __restrict__ y,
                                                     int8_t* __restrict__ argmax) {
  const InterleavedPieces& layout = interleaved_pieces(K);
  const int64_t pairs = (K + 1) / 2;
  const __m512 scale = _mm512_set1_ps(static_cast<float>(d.scale)), p = _mm512_set1_ps(d.p);
  int64_t j0 = 0;
  for (; j0 + 16 <= units; j0 += 16) {
    __m512 v[kMaxInterleavedPieces + 1];
    for (int64_t m = 0; m < K; ++m) v[m] = _mm512_loadu_ps(z + j0 * K + 16 * m);
    v[K] = _mm512_setzero_ps();  // the odd K's last pair has one vector
    __m512 best = _mm512_setzero_ps();
    __m512i arg = _mm512_setzero_si512();
    for (int64_t k = 0; k < K; ++k) {
      __m512 piece = _mm512_permutex2var_ps(v[0], layout.index_in_pair[k][0], v[1]);
      for (int64_t q = 1; q < pairs; ++q)
        piece = _mm512_mask_blend_ps(layout.from_pair[k][q], piece,
                                     _mm512_permutex2var_ps(v[2 * q], layout.index_in_pair[k][q], v[2 * q + 1]));
      // maxout_takes: strictly larger, or the first NaN; piece 0 always
      const __mmask16 take = k == 0 ? __mmask16(0xFFFF)
                                    : __mmask16(_mm512_cmp_ps_mask(piece, best, _CMP_GT_OQ) |
                                                (_mm512_cmp_ps_mask(piece, piece, _CMP_UNORD_Q) &
                                                 _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q)));
      best = _mm512_mask_blend_ps(take, best, piece);
      arg = _mm512_mask_blend_epi32(take, arg, _mm512_set1_epi32(static_cast<int>(k)));
    }
    if (d.p > 0) {  // kept: best * scale (inf and NaN stay); dropped: exactly 0
      const __mmask16 keep = _mm512_cmp_ps_mask(philox_uniform16(d.seed, index + j0), p, _CMP_GT_OQ);
      best = _mm512_maskz_mov_ps(keep, _mm512_mul_ps(best, scale));
    }
    _mm512_storeu_ps(y + j0, best);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(argmax + j0), _mm512_cvtepi32_epi8(arg));
  }
  maxout_dropout_row_generic(z + j0 * K, units - j0, K, d, index + j0, y + j0, argmax + j0);
}
#endif

template <typename scalar_t>
void maxout_dropout_row(const scalar_t* __restrict__ z, int64_t units, int64_t K, const DropoutParams& d,
                        uint64_t index, scalar_t* __restrict__ y, int8_t* __restrict__ argmax) {
#ifdef FASTGAN_AVX512_DISPATCH
  if constexpr (std::is_same_v<scalar_t, float>)
    if (avx512_rows(K)) return maxout_dropout_row_avx512(z, units, K, d, index, y, argmax);
#endif
  maxout_dropout_row_generic(z, units, K, d, index, y, argmax);
}

// Positions [0, inner) of one line (r, u) of z [R, U*K, inner], inner > 1: z points at the line's piece 0,
// y/argmax at its first output, `index` is the Philox element index of position 0. The pieces of
// neighbouring positions are already neighbouring lanes, so no transposition is needed.
template <typename scalar_t>
void maxout_dropout_line(const scalar_t* __restrict__ z, int64_t inner, int64_t K, const DropoutParams& d,
                         uint64_t index, scalar_t* __restrict__ y, int8_t* __restrict__ argmax) {
  for (int64_t i0 = 0; i0 < inner; i0 += kChunk)
    maxout_dropout_lanes(z + i0, inner, std::min(kChunk, inner - i0), K, d, index + i0, y + i0, argmax + i0);
}

// g[j] = grad_y[j] times the regenerated mask / (1-p) of the n <= kChunk units at Philox indices index + j.
template <typename scalar_t>
void dropout_grad(const scalar_t* __restrict__ grad_y, int64_t n, const DropoutParams& d, uint64_t index,
                  scalar_t* __restrict__ g) {
  const float p = d.p;
  const scalar_t scale = static_cast<scalar_t>(d.scale);
  float uniform[kChunk];
  if (p > 0) {
    fill_uniforms(uniform, n, d.seed, index);
    for (int64_t j = 0; j < n; ++j) g[j] = select(uniform[j] > p, grad_y[j] * scale, scalar_t(0));
  } else {
    for (int64_t j = 0; j < n; ++j) g[j] = grad_y[j];
  }
}

// Zeroes the row's pieces, then writes each unit's gradient to its argmax piece (checked to lie in [0, K)):
// the paper's 100 x 240 x 5 backward at p = 0 took 49 us on one core with a select per piece, which gcc
// leaves scalar over the K interleaved pieces, and 27 us this way.
template <typename scalar_t>
void maxout_backward_row_generic(const scalar_t* __restrict__ grad_y, const int8_t* __restrict__ argmax,
                                 int64_t units, int64_t K, const DropoutParams& d, uint64_t index,
                                 scalar_t* __restrict__ grad_z) {
  scalar_t g[kChunk];
  std::memset(grad_z, 0, units * K * sizeof(scalar_t));
  for (int64_t u0 = 0; u0 < units; u0 += kChunk) {
    const int64_t n = std::min(kChunk, units - u0);
    dropout_grad(grad_y + u0, n, d, index + u0, g);
    scalar_t* out = grad_z + u0 * K;
    for (int64_t j = 0; j < n; ++j) out[j * K + argmax[u0 + j]] = g[j];
  }
}

#ifdef FASTGAN_AVX512_DISPATCH
// The float row for K <= 16, 16 units at a time: their masked gradient and argmax are spread over the K
// output vectors by one permute each (InterleavedPieces), and each element keeps the gradient where its
// piece is its unit's argmax. The paper's 100 x 240 x 5 backward on one core: 25 us at p = 0 and 49 us at
// p = 0.5 with the zero fill and scalar scatter, 18 and 44 us here.
FASTGAN_TARGET_AVX512 void maxout_backward_row_avx512(const float* __restrict__ grad_y,
                                                      const int8_t* __restrict__ argmax, int64_t units, int64_t K,
                                                      const DropoutParams& d, uint64_t index,
                                                      float* __restrict__ grad_z) {
  const InterleavedPieces& layout = interleaved_pieces(K);
  const __m512 scale = _mm512_set1_ps(static_cast<float>(d.scale)), p = _mm512_set1_ps(d.p);
  int64_t j0 = 0;
  for (; j0 + 16 <= units; j0 += 16) {
    __m512 g = _mm512_loadu_ps(grad_y + j0);
    if (d.p > 0) {  // dropout_grad
      const __mmask16 keep = _mm512_cmp_ps_mask(philox_uniform16(d.seed, index + j0), p, _CMP_GT_OQ);
      g = _mm512_maskz_mov_ps(keep, _mm512_mul_ps(g, scale));
    }
    const __m512i arg = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(argmax + j0)));
    float* out = grad_z + j0 * K;
    for (int64_t m = 0; m < K; ++m) {
      const __mmask16 hit = _mm512_cmpeq_epi32_mask(_mm512_permutexvar_epi32(layout.unit_of[m], arg),
                                                    layout.piece_of[m]);
      _mm512_storeu_ps(out + 16 * m, _mm512_maskz_mov_ps(hit, _mm512_permutexvar_ps(layout.unit_of[m], g)));
    }
  }
  maxout_backward_row_generic(grad_y + j0, argmax + j0, units - j0, K, d, index + j0, grad_z + j0 * K);
}
#endif

template <typename scalar_t>
void maxout_backward_row(const scalar_t* __restrict__ grad_y, const int8_t* __restrict__ argmax, int64_t units,
                         int64_t K, const DropoutParams& d, uint64_t index, scalar_t* __restrict__ grad_z) {
#ifdef FASTGAN_AVX512_DISPATCH
  if constexpr (std::is_same_v<scalar_t, float>)
    if (avx512_rows(K)) return maxout_backward_row_avx512(grad_y, argmax, units, K, d, index, grad_z);
#endif
  maxout_backward_row_generic(grad_y, argmax, units, K, d, index, grad_z);
}

// The backward of maxout_dropout_line: grad_z's K pieces of the line, [K, inner], piece k's lanes contiguous,
// so a select per piece vectorises here.
template <typename scalar_t>
void maxout_backward_line(const scalar_t* __restrict__ grad_y, const int8_t* __restrict__ argmax, int64_t inner,
                          int64_t K, const DropoutParams& d, uint64_t index, scalar_t* __restrict__ grad_z) {
  scalar_t g[kChunk];
  for (int64_t i0 = 0; i0 < inner; i0 += kChunk) {
    const int64_t n = std::min(kChunk, inner - i0);
    dropout_grad(grad_y + i0, n, d, index + i0, g);
    for (int64_t k = 0; k < K; ++k) {
      scalar_t* out = grad_z + k * inner + i0;
      for (int64_t j = 0; j < n; ++j) out[j] = select(k == argmax[i0 + j], g[j], scalar_t(0));
    }
  }
}

// The backward kernels index with the argmax, so a bad one (the ops are public) must not reach them: one
// pass over its bytes (24 KB for the paper's layer at batch 100). Its dtype and shape are checked before.
void check_argmax_values(const at::Tensor& argmax, int64_t pieces) {
  const at::Tensor a = argmax.contiguous();
  const uint8_t* ap = reinterpret_cast<const uint8_t*>(a.data_ptr<int8_t>());
  uint8_t largest = 0;  // a negative int8 reads as >= 128
  for (int64_t i = 0; i < a.numel(); ++i) largest = std::max(largest, ap[i]);
  TORCH_CHECK(largest < pieces, "argmax must hold piece indices in [0, pieces=", pieces, "), got ",
              static_cast<int>(static_cast<int8_t>(largest)));
}

// out[0:dim] = sum over i < count of coef[i] * base[row[i] * dim + 0:dim], the sparse products of the
// maxout_linear backward. The columns go in blocks of 8 vectors whose sums stay in registers while the rows
// stream past (one load and one FMA per vector); the sparse backward of 100 x 784 -> 240 x 5 at p = 0.5
// took 1.25 ms on one core with row-by-row axpy into out, 0.83 ms with this (MKL's dense GEMMs: 3.9 ms).
template <typename scalar_t>
void weighted_row_sum_vec(scalar_t* __restrict__ out, const scalar_t* __restrict__ base, int64_t dim,
                          const int64_t* __restrict__ row, const scalar_t* __restrict__ coef, int64_t count,
                          bool accumulate) {
  using Vec = at::vec::Vectorized<scalar_t>;
  constexpr int64_t kVecs = 8, kBlock = kVecs * Vec::size();
  int64_t d0 = 0;
  for (; d0 + kBlock <= dim; d0 += kBlock) {
    Vec acc[kVecs];  // fully unrolled, so gcc keeps them in registers
#pragma GCC unroll 8
    for (int64_t v = 0; v < kVecs; ++v) acc[v] = Vec(scalar_t(0));
    for (int64_t i = 0; i < count; ++i) {
      const scalar_t* src = base + row[i] * dim + d0;
      const Vec c(coef[i]);
#pragma GCC unroll 8
      for (int64_t v = 0; v < kVecs; ++v) acc[v] = at::vec::fmadd(c, Vec::loadu(src + v * Vec::size()), acc[v]);
    }
#pragma GCC unroll 8
    for (int64_t v = 0; v < kVecs; ++v) {
      scalar_t* dst = out + d0 + v * Vec::size();
      (accumulate ? acc[v] + Vec::loadu(dst) : acc[v]).store(dst);
    }
  }
  for (; d0 < dim; d0 += Vec::size()) {  // the last columns, one (partial) vector at a time
    const int64_t n = std::min<int64_t>(Vec::size(), dim - d0);
    Vec acc(scalar_t(0));
    for (int64_t i = 0; i < count; ++i) acc = at::vec::fmadd(Vec(coef[i]), Vec::loadu(base + row[i] * dim + d0, n), acc);
    (accumulate ? acc + Vec::loadu(out + d0, n) : acc).store(out + d0, n);
  }
}

#ifdef FASTGAN_AVX512_DISPATCH
// NV vectors of 16 floats of weighted_row_sum's columns [d0, d0 + 16 NV), the last one `last` masked.
template <int NV>
FASTGAN_TARGET_AVX512 inline void weighted_row_block16(float* __restrict__ out, const float* __restrict__ base,
                                                      int64_t dim, int64_t d0, const int64_t* __restrict__ row,
                                                      const float* __restrict__ coef, int64_t count, bool accumulate,
                                                      __mmask16 last) {
  __m512 acc[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) acc[v] = _mm512_setzero_ps();
  for (int64_t i = 0; i < count; ++i) {
    const float* src = base + row[i] * dim + d0;
    const __m512 c = _mm512_set1_ps(coef[i]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      acc[v] = _mm512_fmadd_ps(c, _mm512_maskz_loadu_ps(v == NV - 1 ? last : 0xFFFF, src + 16 * v), acc[v]);
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    const __mmask16 m = v == NV - 1 ? last : 0xFFFF;
    float* dst = out + d0 + 16 * v;
    _mm512_mask_storeu_ps(dst, m, accumulate ? _mm512_add_ps(acc[v], _mm512_maskz_loadu_ps(m, dst)) : acc[v]);
  }
}

// weighted_row_sum for float in 16-float vectors, twice the AVX2 build's Vectorized<float>, and the last
// columns in one pass of up to 8 vectors, the final one masked (the AVX2 loop walks them one vector a pass).
// The paper's D backward on one core (256 KB blocks): the 200 x 784 -> 240 x 5 layer's weight gradient went
// from 1.01 to 0.92 ms, the 200 x 240 -> 240 x 5 layer's three gradients from 0.82 to 0.62 ms.
FASTGAN_TARGET_AVX512 void weighted_row_sum_avx512(float* __restrict__ out, const float* __restrict__ base,
                                                   int64_t dim, const int64_t* __restrict__ row,
                                                   const float* __restrict__ coef, int64_t count, bool accumulate) {
  int64_t d0 = 0;
  for (; d0 + 128 <= dim; d0 += 128)
    weighted_row_block16<8>(out, base, dim, d0, row, coef, count, accumulate, 0xFFFF);
  if (d0 == dim) return;
  const int64_t rest = dim - d0, vecs = (rest + 15) / 16;
  const __mmask16 last = static_cast<__mmask16>((1u << (rest - 16 * (vecs - 1))) - 1);
  switch (vecs) {
#define FASTGAN_BLOCK_CASE(n) \
  case n:                     \
    return weighted_row_block16<n>(out, base, dim, d0, row, coef, count, accumulate, last);
    FASTGAN_BLOCK_CASE(1) FASTGAN_BLOCK_CASE(2) FASTGAN_BLOCK_CASE(3) FASTGAN_BLOCK_CASE(4)
    FASTGAN_BLOCK_CASE(5) FASTGAN_BLOCK_CASE(6) FASTGAN_BLOCK_CASE(7) FASTGAN_BLOCK_CASE(8)
#undef FASTGAN_BLOCK_CASE
  }
}
#endif

// weighted_row_sum_vec, or its AVX-512 form for float where the CPU runs it.
template <typename scalar_t>
void weighted_row_sum(scalar_t* __restrict__ out, const scalar_t* __restrict__ base, int64_t dim,
                      const int64_t* __restrict__ row, const scalar_t* __restrict__ coef, int64_t count,
                      bool accumulate) {
#ifdef FASTGAN_AVX512_DISPATCH
  if constexpr (std::is_same_v<scalar_t, float>)
    if (has_avx512()) return weighted_row_sum_avx512(out, base, dim, row, coef, count, accumulate);
#endif
  weighted_row_sum_vec(out, base, dim, row, coef, count, accumulate);
}

// Rows per parallel task: about 32k pieces, so 2 cores get work at batch 100 and tasks outweigh overhead.
int64_t row_grain(int64_t row_elems) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(row_elems, 1)); }

}  // namespace

std::vector<at::Tensor> maxout_dropout_cpu(const at::Tensor& z_in, int64_t pieces, double p, int64_t seed,
                                           int64_t offset) {
  check_maxout_args(check_cpu_input, z_in, pieces, p, seed, offset);
  const at::Tensor z = z_in.contiguous();
  const int64_t rows = z.size(0), units = z.size(1) / pieces, inner = z.dim() == 3 ? z.size(2) : 1;
  std::vector<int64_t> shape = z.sizes().vec();
  shape[1] = units;  // y [R, U(, inner)]
  at::Tensor y = at::empty(shape, z.options());
  at::Tensor argmax = at::empty(shape, z.options().dtype(at::kChar));
  const DropoutParams d = make_dropout(p, seed, offset);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "maxout_dropout_cpu", [&] {
    const scalar_t* zp = z.data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    int8_t* ap = argmax.data_ptr<int8_t>();
    if (inner == 1) {
      at::parallel_for(0, rows, row_grain(units * pieces), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          maxout_dropout_row<scalar_t>(zp + r * units * pieces, units, pieces, d, dropout_index(offset, r, units, 0),
                                       yp + r * units, ap + r * units);
      });
    } else {  // lines l = r*U + u, each with its [K, inner] pieces and [inner] outputs
      at::parallel_for(0, rows * units, row_grain(pieces * inner), [&](int64_t l0, int64_t l1) {
        for (int64_t l = l0; l < l1; ++l)
          maxout_dropout_line<scalar_t>(zp + l * pieces * inner, inner, pieces, d, dropout_index(offset, l, inner, 0),
                                        yp + l * inner, ap + l * inner);
      });
    }
  });
  return {y, argmax};
}

at::Tensor maxout_dropout_backward_cpu(const at::Tensor& grad_y_in, const at::Tensor& argmax_in, int64_t pieces,
                                       double p, int64_t seed, int64_t offset) {
  check_maxout_backward_args(check_cpu_input, grad_y_in, argmax_in, pieces, p, seed, offset);
  check_argmax_values(argmax_in, pieces);
  const at::Tensor grad_y = grad_y_in.contiguous(), argmax = argmax_in.contiguous();
  const int64_t rows = grad_y.size(0), units = grad_y.size(1), inner = grad_y.dim() == 3 ? grad_y.size(2) : 1;
  std::vector<int64_t> shape = grad_y.sizes().vec();
  shape[1] = units * pieces;  // grad_z [R, U*K(, inner)]
  at::Tensor grad_z = at::empty(shape, grad_y.options());
  const DropoutParams d = make_dropout(p, seed, offset);
  AT_DISPATCH_FLOATING_TYPES(grad_y.scalar_type(), "maxout_dropout_backward_cpu", [&] {
    const scalar_t* gp = grad_y.data_ptr<scalar_t>();
    const int8_t* ap = argmax.data_ptr<int8_t>();
    scalar_t* out = grad_z.data_ptr<scalar_t>();
    if (inner == 1) {
      at::parallel_for(0, rows, row_grain(units * pieces), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          maxout_backward_row<scalar_t>(gp + r * units, ap + r * units, units, pieces, d,
                                        dropout_index(offset, r, units, 0), out + r * units * pieces);
      });
    } else {
      at::parallel_for(0, rows * units, row_grain(pieces * inner), [&](int64_t l0, int64_t l1) {
        for (int64_t l = l0; l < l1; ++l)
          maxout_backward_line<scalar_t>(gp + l * inner, ap + l * inner, inner, pieces, d,
                                         dropout_index(offset, l, inner, 0), out + l * pieces * inner);
      });
    }
  });
  return grad_z;
}

std::vector<at::Tensor> maxout_linear_cpu(const at::Tensor& x_in, const at::Tensor& weight_in,
                                          const at::Tensor& bias_in, int64_t pieces, double p, int64_t seed,
                                          int64_t offset) {
  check_maxout_linear_args(check_cpu_input, x_in, weight_in, bias_in, pieces, p, seed, offset);
  const at::Tensor x = x_in.contiguous(), weight = weight_in.contiguous(), bias = bias_in.contiguous();
  const int64_t rows = x.size(0), units = weight.size(0) / pieces;
  at::Tensor y = at::empty({rows, units}, x.options());
  at::Tensor argmax = at::empty({rows, units}, x.options().dtype(at::kChar));
  // Tiles of up to 256 rows x ~512 columns (whole units): a float32 z tile of 512 KB stays in L2 for the
  // epilogue. Cutting the columns cost MKL's GEMM nothing measurable (82 ms for 1024x784 @ 784x6000 on one
  // core, whole or in 320-1500-column blocks); 32-row blocks cost 30%, so rows are cut coarsely. On oneDNN
  // (dense_linear) the whole D-step layer, 200 x 784 -> 240 x 5 with its epilogue, takes 1.57 ms on one core
  // against 1.45 ms for its bare GEMM.
  // The tile count is rounded up to a multiple of the threads: the paper's 240 x 5 layer made 3 tiles for 2
  // cores, so one core ran two tiles while the other waited.
  const int64_t tile_rows = std::min<int64_t>(256, std::max<int64_t>(rows, 1));
  const int64_t row_tiles = (rows + tile_rows - 1) / tile_rows;
  const int64_t threads = at::get_num_threads();
  const int64_t per_thread = std::max<int64_t>(1, threads / std::max<int64_t>(row_tiles, 1));
  int64_t unit_tiles = (units * pieces + 511) / 512;
  unit_tiles = std::min(units, (unit_tiles + per_thread - 1) / per_thread * per_thread);
  const int64_t tile_units = std::max<int64_t>(1, (units + unit_tiles - 1) / std::max<int64_t>(unit_tiles, 1));
  unit_tiles = (units + tile_units - 1) / tile_units;
  const DropoutParams d = make_dropout(p, seed, offset);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "maxout_linear_cpu", [&] {
    scalar_t* yp = y.data_ptr<scalar_t>();
    int8_t* ap = argmax.data_ptr<int8_t>();
    // One tile per task: MKL runs single-threaded inside the parallel region, so the cores split tiles.
    at::parallel_for(0, row_tiles * unit_tiles, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t r0 = (t / unit_tiles) * tile_rows, u0 = (t % unit_tiles) * tile_units;
        const int64_t n_rows = std::min(tile_rows, rows - r0), n_units = std::min(tile_units, units - u0);
        const int64_t c0 = u0 * pieces, n_cols = n_units * pieces;
        // Grad mode is per thread and the pool's threads have it on: without the guard each tile's addmm
        // would record an autograd node for the weight it reads.
        at::NoGradGuard no_grad;
        const at::Tensor z =
            dense_linear(x.narrow(0, r0, n_rows), weight.narrow(0, c0, n_cols), bias.narrow(0, c0, n_cols));
        const scalar_t* zp = z.data_ptr<scalar_t>();
        for (int64_t r = 0; r < n_rows; ++r)
          maxout_dropout_row<scalar_t>(zp + r * n_cols, n_units, pieces, d, dropout_index(offset, r0 + r, units, u0),
                                       yp + (r0 + r) * units + u0, ap + (r0 + r) * units + u0);
      }
    });
  });
  return {y, argmax};
}

std::vector<at::Tensor> maxout_linear_backward_cpu(const at::Tensor& grad_y_in, const at::Tensor& argmax_in,
                                                   const at::Tensor& x_in, const at::Tensor& weight_in, int64_t pieces,
                                                   double p, int64_t seed, int64_t offset,
                                                   std::vector<bool> needs_grad) {
  check_cpu_input(grad_y_in, "grad_y", 2, grad_y_in);
  check_cpu_input(x_in, "x", 2, grad_y_in);
  check_cpu_input(weight_in, "weight", 2, grad_y_in);
  check_dropout(pieces, p, seed, offset);
  TORCH_CHECK(needs_grad.size() == 3, "needs_grad must have 3 entries (x, weight, bias), got ", needs_grad.size());
  TORCH_CHECK(weight_in.size(0) == grad_y_in.size(1) * pieces && x_in.size(1) == weight_in.size(1) &&
                  x_in.size(0) == grad_y_in.size(0),
              "shapes do not match: grad_y ", grad_y_in.sizes(), ", x ", x_in.sizes(), ", weight ", weight_in.sizes(),
              ", pieces ", pieces);
  TORCH_CHECK(argmax_in.device().is_cpu() && argmax_in.scalar_type() == at::kChar &&
                  argmax_in.sizes() == grad_y_in.sizes(),
              "argmax must be int8 of grad_y's shape ", grad_y_in.sizes(), ", got ", argmax_in.scalar_type(), " ",
              argmax_in.sizes(), " on ", argmax_in.device());
  check_argmax_values(argmax_in, pieces);
  const at::Tensor grad_y = grad_y_in.contiguous(), argmax = argmax_in.contiguous();
  const at::Tensor x = x_in.contiguous(), weight = weight_in.contiguous();
  const int64_t rows = x.size(0), dim = x.size(1), units = grad_y.size(1), K = pieces;
  // The GEMMs on a dense grad_z win once enough of it is nonzero. Measured on one core, 100 x 784 -> 1200
  // pieces, all three gradients, against oneDNN's float32 GEMMs: the sparse products are 2.6x faster at
  // (1-p)/K = 0.1 (the paper's K = 5, p = 0.5), 1.4x at 0.2, 0.94x at 0.25 and 0.45x at 0.5. Against MKL's
  // GEMMs (float64, or torch without oneDNN) they were still 1.15x faster at 0.5.
  const double dense_above = x.scalar_type() == at::kFloat && dense_linear_uses_onednn() ? 0.2 : 0.5;
  if ((1.0 - p) / K > dense_above) {
    const at::Tensor grad_z = maxout_dropout_backward_cpu(grad_y, argmax, pieces, p, seed, offset);
    return {needs_grad[0] ? dense_linear(grad_z, weight.t(), std::nullopt) : x.new_empty({0}),
            needs_grad[1] ? dense_linear(grad_z.t(), x.t(), std::nullopt) : x.new_empty({0}),
            needs_grad[2] ? grad_z.sum(0) : x.new_empty({0})};
  }
  const DropoutParams d = make_dropout(p, seed, offset);
  at::Tensor grad_x = needs_grad[0] ? at::empty_like(x) : x.new_empty({0});
  at::Tensor grad_weight = needs_grad[1] ? at::empty_like(weight) : x.new_empty({0});
  at::Tensor grad_bias = needs_grad[2] ? at::empty({weight.size(0)}, x.options()) : x.new_empty({0});
  // g [R, U]: grad_y through the regenerated mask and 1/(1-p); a zero in g is a unit whose pieces get nothing.
  at::Tensor g = at::empty_like(grad_y);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "maxout_linear_backward_cpu", [&] {
    const scalar_t* gy = grad_y.data_ptr<scalar_t>();
    scalar_t* gp = g.data_ptr<scalar_t>();
    const int8_t* ap = argmax.data_ptr<int8_t>();
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* wp = weight.data_ptr<scalar_t>();
    at::parallel_for(0, rows, row_grain(units * K), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t u0 = 0; u0 < units; u0 += kChunk)
          dropout_grad(gy + r * units + u0, std::min(kChunk, units - u0), d, dropout_index(offset, r, units, u0),
                       gp + r * units + u0);
    });
    // Both products go in blocks whose operand rows (x rows for grad_weight, weight rows for grad_x) fill
    // about 1 MB, so they are read from L2: the 1024 x 784 -> 1200 x 5 backward gathered 2 GB from L3
    // without the blocks. Each block after the first reads and writes grad_weight again: at 256 KB the D
    // step's 200 x 784 -> 240 x 5 weight gradient took 0.92 ms on one core, at 1 MB 0.77 ms.
    const int64_t block_bytes = 1024 * 1024;
    if (needs_grad[1] || needs_grad[2]) {
      scalar_t* gw = needs_grad[1] ? grad_weight.data_ptr<scalar_t>() : nullptr;
      scalar_t* gb = needs_grad[2] ? grad_bias.data_ptr<scalar_t>() : nullptr;
      const int64_t block_rows = std::max<int64_t>(1, block_bytes / (dim * sizeof(scalar_t)));
      // grad_weight[u*K + k] = sum of g[r, u] x[r] over the rows whose argmax is k: threads own units, and
      // each unit's nonzero rows are bucketed by piece.
      at::parallel_for(0, units, 1, [&](int64_t u0, int64_t u1) {
        std::vector<int64_t> start(K + 1), next(K), row(block_rows);
        std::vector<scalar_t> coef(block_rows);
        if (gb) std::fill(gb + u0 * K, gb + u1 * K, scalar_t(0));
        for (int64_t r0 = 0; r0 == 0 || r0 < rows; r0 += block_rows) {
          const int64_t r1 = std::min(rows, r0 + block_rows);
          for (int64_t u = u0; u < u1; ++u) {
            std::fill(start.begin(), start.end(), 0);
            for (int64_t r = r0; r < r1; ++r) start[ap[r * units + u] + 1] += gp[r * units + u] != scalar_t(0);
            for (int64_t k = 0; k < K; ++k) start[k + 1] += start[k];
            std::copy(start.begin(), start.end() - 1, next.begin());
            for (int64_t r = r0; r < r1; ++r) {
              const scalar_t gv = gp[r * units + u];
              if (gv == scalar_t(0)) continue;
              const int64_t i = next[ap[r * units + u]]++;
              row[i] = r;
              coef[i] = gv;
            }
            for (int64_t k = 0; k < K; ++k) {
              const int64_t* rk = row.data() + start[k];
              const scalar_t* ck = coef.data() + start[k];
              const int64_t n = start[k + 1] - start[k];
              if (gw) weighted_row_sum(gw + (u * K + k) * dim, xp, dim, rk, ck, n, r0 > 0);
              if (gb) gb[u * K + k] += std::accumulate(ck, ck + n, scalar_t(0));
            }
          }
        }
      });
    }
    if (needs_grad[0]) {
      scalar_t* gx = grad_x.data_ptr<scalar_t>();
      const int64_t block_units = std::max<int64_t>(1, block_bytes / (K * dim * sizeof(scalar_t)));
      // grad_x[r] = sum over the kept units of g[r, u] weight[u*K + argmax]: threads own rows.
      at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
        std::vector<int64_t> row(block_units);
        std::vector<scalar_t> coef(block_units);
        for (int64_t u0 = 0; u0 == 0 || u0 < units; u0 += block_units) {
          const int64_t u1 = std::min(units, u0 + block_units);
          for (int64_t r = r0; r < r1; ++r) {
            int64_t n = 0;
            for (int64_t u = u0; u < u1; ++u) {  // branch-free compaction of the kept units
              const scalar_t gv = gp[r * units + u];
              row[n] = u * K + ap[r * units + u];
              coef[n] = gv;
              n += gv != scalar_t(0);
            }
            weighted_row_sum(gx + r * dim, wp, dim, row.data(), coef.data(), n, u0 > 0);
          }
        }
      });
    }
  });
  return {grad_x, grad_weight, grad_bias};
}

}  // namespace fastgan
