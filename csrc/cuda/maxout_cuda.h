// Raw-pointer launchers of the maxout + dropout CUDA kernels: no torch headers, so nvcc compile-checks
// them on machines without a GPU or a CUDA build of torch. scalar_t: float, double, __half, __nv_bfloat16.
// The math (first maximum, NaN wins, Philox mask at offset + the output's flat index) is common/maxout_math.h.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

namespace fastgan {

// The fused layer keeps one accumulator per piece in registers up to this many pieces (a kernel templated on
// K); more pieces run a generic kernel that loops over them.
constexpr int kMaxoutLinearMaxPieces = 16;

// y[e], argmax[e] for the n = R*U*inner elements of y [R, U, inner] from z [R, U*K, inner] (element e's
// pieces start at maxout_first_piece(e, K, inner), inner apart; inner = 1 for a dense z [R, U*K]); p == 0
// draws nothing.
template <typename scalar_t>
void maxout_dropout_cuda_launch(const scalar_t* z, int64_t n, int64_t pieces, int64_t inner, double p, int64_t seed,
                                int64_t offset, scalar_t* y, int8_t* argmax, cudaStream_t stream);

// grad_z [n*K]: grad_y[e] times the regenerated mask / (1-p) on piece argmax[e] of element e, 0 elsewhere.
template <typename scalar_t>
void maxout_dropout_backward_cuda_launch(const scalar_t* grad_y, const int8_t* argmax, int64_t n, int64_t pieces,
                                         int64_t inner, double p, int64_t seed, int64_t offset, scalar_t* grad_z,
                                         cudaStream_t stream);

// y, argmax [R, U] of maxout_dropout(x @ weight.T + bias) for x [R, D], weight [U*K, D], bias [U*K], all
// row-major; z is computed in shared-memory tiles and never written. Any pieces in [1, 127].
template <typename scalar_t>
void maxout_linear_cuda_launch(const scalar_t* x, const scalar_t* weight, const scalar_t* bias, int64_t rows,
                               int64_t features, int64_t units, int64_t pieces, double p, int64_t seed,
                               int64_t offset, scalar_t* y, int8_t* argmax, cudaStream_t stream);

}  // namespace fastgan
