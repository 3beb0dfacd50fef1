// CUDA kernels of maxout + dropout. The elementwise kernels take one output element per thread in a
// grid-stride loop: e = (row*U + unit)*inner + i, so neighbouring threads read neighbouring positions i of
// each piece (coalesced) when inner > 1, and neighbouring units' pieces when inner = 1. The layer kernel
// is a shared-memory tiled GEMM (16 x 16 threads, one (row, unit) each, one register accumulator per
// piece) whose epilogue adds the bias, takes the max and applies the dropout, so z never reaches global
// memory; beyond 16 pieces a generic kernel takes them one at a time. No tensor cores: a cuBLAS GEMM + the
// elementwise kernel may be faster for large layers.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/maxout_math.h"
#include "cuda/maxout_cuda.h"
#include "cuda/launch.cuh"

namespace fastgan {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 65535;
constexpr int kTile = 16;  // rows and units per block of the layer kernel, and features per shared-memory step

// The unit's value after dropout; `index` is its Philox element index, offset + row*U + unit.
template <typename acc_t>
__device__ acc_t apply_dropout(acc_t v, const DropoutParams& d, uint64_t index) {
  if (d.p <= 0.f) return v;
  return dropout_keeps(d.seed, index, d.p) ? v * static_cast<acc_t>(d.scale) : acc_t(0);
}

template <typename scalar_t, typename acc_t>
__global__ void maxout_dropout_fwd_kernel(const scalar_t* __restrict__ z, int64_t n, int pieces, int64_t inner,
                                          DropoutParams d, scalar_t* __restrict__ y, int8_t* __restrict__ argmax) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const scalar_t* piece = z + maxout_first_piece(e, pieces, inner);
    acc_t best = static_cast<acc_t>(piece[0]);
    int arg = 0;
    for (int k = 1; k < pieces; ++k) {
      const acc_t v = static_cast<acc_t>(piece[k * inner]);
      if (maxout_takes(v, best)) best = v, arg = k;
    }
    // e is the flat index of the [R, U, inner] output
    y[e] = static_cast<scalar_t>(apply_dropout(best, d, dropout_index(d.offset, 0, 0, e)));
    argmax[e] = static_cast<int8_t>(arg);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void maxout_dropout_bwd_kernel(const scalar_t* __restrict__ grad_y, const int8_t* __restrict__ argmax,
                                          int64_t n, int pieces, int64_t inner, DropoutParams d,
                                          scalar_t* __restrict__ grad_z) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const uint64_t index = dropout_index(d.offset, 0, 0, e);
    const scalar_t g = static_cast<scalar_t>(apply_dropout(static_cast<acc_t>(grad_y[e]), d, index));
    const int arg = argmax[e];
    scalar_t* piece = grad_z + maxout_first_piece(e, pieces, inner);
    for (int k = 0; k < pieces; ++k) piece[k * inner] = k == arg ? g : static_cast<scalar_t>(0.f);
  }
}

// Block (bx, by) computes rows by*16 .. +15 and units bx*16 .. +15; thread (tx, ty) owns (row ty, unit tx)
// and its K pieces. Each step stages 16 features of the x rows and of the 16*K weight rows in shared memory.
template <typename scalar_t, typename acc_t, int K>
__global__ void maxout_linear_fwd_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ weight,
                                         const scalar_t* __restrict__ bias, int64_t rows, int64_t features,
                                         int64_t units, DropoutParams d, scalar_t* __restrict__ y,
                                         int8_t* __restrict__ argmax) {
  __shared__ acc_t xs[kTile][kTile + 1];
  __shared__ acc_t ws[kTile * K][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t row = blockIdx.y * (int64_t)kTile + ty, unit = blockIdx.x * (int64_t)kTile + tx;
  const int64_t first_col = blockIdx.x * (int64_t)kTile * K;  // weight row of the block's first piece
  acc_t acc[K];
#pragma unroll
  for (int k = 0; k < K; ++k) acc[k] = 0;
  for (int64_t f0 = 0; f0 < features; f0 += kTile) {
    const int64_t xr = blockIdx.y * (int64_t)kTile + ty, f = f0 + tx;
    xs[ty][tx] = (xr < rows && f < features) ? static_cast<acc_t>(x[xr * features + f]) : acc_t(0);
    for (int c = ty; c < kTile * K; c += kTile) {
      const int64_t wr = first_col + c;
      ws[c][tx] = (wr < units * K && f < features) ? static_cast<acc_t>(weight[wr * features + f]) : acc_t(0);
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kTile; ++j) {
      const acc_t xv = xs[ty][j];
#pragma unroll
      for (int k = 0; k < K; ++k) acc[k] += xv * ws[tx * K + k][j];
    }
    __syncthreads();
  }
  if (row >= rows || unit >= units) return;
  acc_t best = acc[0] + static_cast<acc_t>(bias[unit * K]);
  int arg = 0;
#pragma unroll
  for (int k = 1; k < K; ++k) {
    const acc_t v = acc[k] + static_cast<acc_t>(bias[unit * K + k]);
    if (maxout_takes(v, best)) best = v, arg = k;
  }
  const int64_t e = row * units + unit;
  y[e] = static_cast<scalar_t>(apply_dropout(best, d, dropout_index(d.offset, row, units, unit)));
  argmax[e] = static_cast<int8_t>(arg);
}

// More pieces than registers allow one accumulator each (K > kMaxoutLinearMaxPieces): the pieces one after
// another, each a full pass over the features through the same shared-memory tiles, so x is read K times.
template <typename scalar_t, typename acc_t>
__global__ void maxout_linear_fwd_generic_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ weight,
                                                 const scalar_t* __restrict__ bias, int64_t rows, int64_t features,
                                                 int64_t units, int pieces, DropoutParams d,
                                                 scalar_t* __restrict__ y, int8_t* __restrict__ argmax) {
  __shared__ acc_t xs[kTile][kTile + 1];
  __shared__ acc_t ws[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t row = blockIdx.y * (int64_t)kTile + ty, unit = blockIdx.x * (int64_t)kTile + tx;
  const int64_t staged_unit = blockIdx.x * (int64_t)kTile + ty;  // the unit whose piece thread (tx, ty) stages
  const bool owns = row < rows && unit < units;
  acc_t best = 0;
  int arg = 0;
  for (int k = 0; k < pieces; ++k) {
    acc_t acc = 0;
    for (int64_t f0 = 0; f0 < features; f0 += kTile) {
      const int64_t f = f0 + tx;
      xs[ty][tx] = (row < rows && f < features) ? static_cast<acc_t>(x[row * features + f]) : acc_t(0);
      ws[ty][tx] = (staged_unit < units && f < features)
                       ? static_cast<acc_t>(weight[(staged_unit * pieces + k) * features + f]) : acc_t(0);
      __syncthreads();
#pragma unroll
      for (int j = 0; j < kTile; ++j) acc += xs[ty][j] * ws[tx][j];
      __syncthreads();
    }
    if (owns) {
      const acc_t v = acc + static_cast<acc_t>(bias[unit * pieces + k]);
      if (k == 0 || maxout_takes(v, best)) best = v, arg = k;
    }
  }
  if (!owns) return;
  const int64_t e = row * units + unit;
  y[e] = static_cast<scalar_t>(apply_dropout(best, d, dropout_index(d.offset, row, units, unit)));
  argmax[e] = static_cast<int8_t>(arg);
}

template <typename scalar_t, typename acc_t, int K>
void launch_linear(const scalar_t* x, const scalar_t* weight, const scalar_t* bias, int64_t rows, int64_t features,
                   int64_t units, const DropoutParams& d, scalar_t* y, int8_t* argmax, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((units + kTile - 1) / kTile),
                  static_cast<unsigned>((rows + kTile - 1) / kTile));
  maxout_linear_fwd_kernel<scalar_t, acc_t, K><<<grid, dim3(kTile, kTile), 0, stream>>>(
      x, weight, bias, rows, features, units, d, y, argmax);
}

}  // namespace

template <typename scalar_t>
void maxout_dropout_cuda_launch(const scalar_t* z, int64_t n, int64_t pieces, int64_t inner, double p, int64_t seed,
                                int64_t offset, scalar_t* y, int8_t* argmax, cudaStream_t stream) {
  if (n == 0) return;
  maxout_dropout_fwd_kernel<scalar_t, typename Acc<scalar_t>::type>
      <<<blocks_for(n, kThreads, kMaxBlocks), kThreads, 0, stream>>>(
      z, n, static_cast<int>(pieces), inner, make_dropout(p, seed, offset), y, argmax);
}

template <typename scalar_t>
void maxout_dropout_backward_cuda_launch(const scalar_t* grad_y, const int8_t* argmax, int64_t n, int64_t pieces,
                                         int64_t inner, double p, int64_t seed, int64_t offset, scalar_t* grad_z,
                                         cudaStream_t stream) {
  if (n == 0) return;
  maxout_dropout_bwd_kernel<scalar_t, typename Acc<scalar_t>::type>
      <<<blocks_for(n, kThreads, kMaxBlocks), kThreads, 0, stream>>>(
      grad_y, argmax, n, static_cast<int>(pieces), inner, make_dropout(p, seed, offset), grad_z);
}

template <typename scalar_t>
void maxout_linear_cuda_launch(const scalar_t* x, const scalar_t* weight, const scalar_t* bias, int64_t rows,
                               int64_t features, int64_t units, int64_t pieces, double p, int64_t seed,
                               int64_t offset, scalar_t* y, int8_t* argmax, cudaStream_t stream) {
  if (rows == 0 || units == 0) return;
  using acc_t = typename Acc<scalar_t>::type;
  const DropoutParams d = make_dropout(p, seed, offset);
  switch (pieces) {
#define FASTGAN_LINEAR_CASE(K) \
  case K:                      \
    return launch_linear<scalar_t, acc_t, K>(x, weight, bias, rows, features, units, d, y, argmax, stream);
    FASTGAN_LINEAR_CASE(1) FASTGAN_LINEAR_CASE(2) FASTGAN_LINEAR_CASE(3) FASTGAN_LINEAR_CASE(4)
    FASTGAN_LINEAR_CASE(5) FASTGAN_LINEAR_CASE(6) FASTGAN_LINEAR_CASE(7) FASTGAN_LINEAR_CASE(8)
    FASTGAN_LINEAR_CASE(9) FASTGAN_LINEAR_CASE(10) FASTGAN_LINEAR_CASE(11) FASTGAN_LINEAR_CASE(12)
    FASTGAN_LINEAR_CASE(13) FASTGAN_LINEAR_CASE(14) FASTGAN_LINEAR_CASE(15) FASTGAN_LINEAR_CASE(16)
#undef FASTGAN_LINEAR_CASE
    default: {
      const dim3 grid(static_cast<unsigned>((units + kTile - 1) / kTile),
                      static_cast<unsigned>((rows + kTile - 1) / kTile));
      maxout_linear_fwd_generic_kernel<scalar_t, acc_t><<<grid, dim3(kTile, kTile), 0, stream>>>(
          x, weight, bias, rows, features, units, static_cast<int>(pieces), d, y, argmax);
    }
  }
}

#define FASTGAN_INSTANTIATE(T)                                                                                   \
  template void maxout_dropout_cuda_launch<T>(const T*, int64_t, int64_t, int64_t, double, int64_t, int64_t, T*,  \
                                              int8_t*, cudaStream_t);                                            \
  template void maxout_dropout_backward_cuda_launch<T>(const T*, const int8_t*, int64_t, int64_t, int64_t, double, \
                                                       int64_t, int64_t, T*, cudaStream_t);                      \
  template void maxout_linear_cuda_launch<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t,    \
                                             double, int64_t, int64_t, T*, int8_t*, cudaStream_t);
FASTGAN_INSTANTIATE(float)
FASTGAN_INSTANTIATE(double)
FASTGAN_INSTANTIATE(__half)
FASTGAN_INSTANTIATE(__nv_bfloat16)
#undef FASTGAN_INSTANTIATE

}  // namespace fastgan
