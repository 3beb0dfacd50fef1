// Run-time dispatch to AVX-512 code. The extension is compiled for AVX2 at most (fastgan/_build_config.py),
// so a loop that gains from 16 float lanes is compiled a second time as a function marked
// FASTGAN_TARGET_AVX512 and called only where has_avx512() says this CPU runs it; such functions may use
// the AVX-512 intrinsics of <immintrin.h>.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define FASTGAN_AVX512_DISPATCH 1
#define FASTGAN_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw")))

namespace fastgan {

inline bool has_avx512() {
  static const bool yes = [] {
    __builtin_cpu_init();  // libgcc's CPU model may not be initialised yet in a dlopen'ed extension
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
  }();
  return yes;
}

}  // namespace fastgan
#else
namespace fastgan {

inline bool has_avx512() { return false; }

}  // namespace fastgan
#endif
