// Launch helpers shared by the raw-pointer CUDA kernels (no torch headers).
#pragma once
#include <stdint.h>

namespace fastgan {

// Accumulation type: float for float/half/bfloat16 inputs, double for double.
template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

// Blocks of `threads` covering n elements, at least 1 and at most max_blocks (grid-stride loops do the rest).
inline int blocks_for(int64_t n, int threads, int max_blocks) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(b < 1 ? 1 : (b > max_blocks ? max_blocks : b));
}

}  // namespace fastgan
