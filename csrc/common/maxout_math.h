// Per-unit math of maxout + dropout, shared by csrc/cpu/maxout_cpu.cpp and csrc/cuda/maxout_cuda.cu; the
// spec is fastgan/reference.py (maxout_argmax, dropout_keep).
//
// z is [R, U*K, inner] (inner = 1 for a dense [R, U*K]; a channel maxout has inner = H*W): element
// (r, u, i) of y [R, U, inner] is the max of its pieces z[r, u*K + k, i], k < K; the argmax is the first
// maximal piece, a NaN counting as the maximum, so NaN propagates and the gradient goes to exactly one
// piece. Dropout keeps the element when the Philox uniform at offset + its flat index (r*U + u)*inner + i
// (offset + r*U + u when inner = 1) is > p (compared in float32), scaling it by 1/(1-p); a dropped element
// is exactly 0, even when its max is inf or NaN.
#pragma once
#include "common/hostdevice.h"
#include "common/philox.h"

namespace fastgan {

// Pieces per unit at most: the argmax is saved as int8.
constexpr int64_t kMaxPieces = 127;

// Whether piece value v replaces the running maximum best: strictly larger, or the first NaN.
template <typename acc_t>
FASTGAN_HD bool maxout_takes(acc_t v, acc_t best) {
  return (v > best) | ((v != v) & (best == best));  // bitwise, not short-circuit: no branches
}

// The Philox element index of unit u in row r of a [rows, units] output; for y [R, U, inner], row is the
// line r*U + u, units is inner and unit the position i.
FASTGAN_HD uint64_t dropout_index(int64_t offset, int64_t row, int64_t units, int64_t unit) {
  return static_cast<uint64_t>(offset + row * units + unit);
}

// Index in z [R, U*K, inner] of piece 0 of output element e (the flat index (r*U + u)*inner + i); piece k
// lies k*inner further on.
FASTGAN_HD int64_t maxout_first_piece(int64_t e, int64_t pieces, int64_t inner) {
  if (inner == 1) return e * pieces;  // the dense layout, without a 64-bit division (tens of GPU instructions)
  const int64_t line = e / inner;
  return line * pieces * inner + (e - line * inner);
}

FASTGAN_HD bool dropout_keeps(uint64_t seed, uint64_t index, float p) { return philox_uniform(seed, index) > p; }

// Dropout's arguments as the kernels take them: no random numbers are drawn when p == 0.
struct DropoutParams {
  float p;       // drop probability, in [0, 1)
  double scale;  // 1 / (1 - p), the inverted-dropout factor for kept units
  uint64_t seed;
  int64_t offset;
};

inline DropoutParams make_dropout(double p, int64_t seed, int64_t offset) {
  return DropoutParams{static_cast<float>(p), 1.0 / (1.0 - p), static_cast<uint64_t>(seed), offset};
}

}  // namespace fastgan
