// CUDA kernel of the Parzen log-sum-exp. One block of kThreads owns kRows test points and walks the
// centres kCols at a time: the x.mu tile is built from kDepth-wide slices of x and mu staged in shared
// memory, turned into distances, and folded into each row's online log-sum-exp (common/parzen_math.h)
// by one warp per row, so only [N, S] ever reaches global memory. Plain FMA (no tensor cores): fp32
// and fp64 accuracy; the Triton kernel is the one with TF32 modes.
#include <float.h>

#include "common/parzen_math.h"
#include "cuda/parzen_cuda.h"

namespace fastgan {
namespace {

constexpr int kRows = 32;   // test points per block
constexpr int kCols = 64;   // centres per tile
constexpr int kDepth = 32;  // features per shared-memory slice
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Each thread owns kRows * kCols / kThreads = 8 dot products: rows ty + 4 k (k < 8) of column tx.
constexpr int kThreadCols = kCols;
constexpr int kThreadRowsStep = kThreads / kThreadCols;  // 4
constexpr int kPerThread = kRows / kThreadRowsStep;      // 8

template <typename T>
__device__ T warp_min(T v) {
  for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

template <typename T>
__device__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T> __device__ T infinity();
template <> __device__ float infinity<float>() { return FLT_MAX * 2.f; }
template <> __device__ double infinity<double>() { return DBL_MAX * 2.0; }

// Dynamic shared memory: row_min [kRows], sums [kRows * S].
template <typename T>
__global__ void parzen_logsumexp_kernel(const T* __restrict__ x, const T* __restrict__ centers,
                                        const T* __restrict__ x_sq, const T* __restrict__ c_sq,
                                        const T* __restrict__ a, int64_t N, int64_t M, int64_t D, int64_t S,
                                        T* __restrict__ lse) {
  __shared__ T xs[kRows][kDepth + 1];
  __shared__ T cs[kCols][kDepth + 1];
  __shared__ T d2[kRows][kCols + 1];
  extern __shared__ unsigned char dynamic[];
  T* row_min = reinterpret_cast<T*>(dynamic);
  T* sums = row_min + kRows;

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRows;
  for (int i = tid; i < kRows; i += kThreads) row_min[i] = infinity<T>();
  for (int64_t i = tid; i < kRows * S; i += kThreads) sums[i] = T(0);

  const int tx = tid % kThreadCols, ty = tid / kThreadCols;
  for (int64_t c0 = 0; c0 < M; c0 += kCols) {
    T acc[kPerThread] = {};
    for (int64_t k0 = 0; k0 < D; k0 += kDepth) {
      __syncthreads();  // the previous slice (or the previous tile's epilogue) is done with the buffers
      for (int i = tid; i < kRows * kDepth; i += kThreads) {
        const int r = i / kDepth, k = i % kDepth;
        xs[r][k] = (row0 + r < N && k0 + k < D) ? x[(row0 + r) * D + k0 + k] : T(0);
      }
      for (int i = tid; i < kCols * kDepth; i += kThreads) {
        const int c = i / kDepth, k = i % kDepth;
        cs[c][k] = (c0 + c < M && k0 + k < D) ? centers[(c0 + c) * D + k0 + k] : T(0);
      }
      __syncthreads();
      for (int k = 0; k < kDepth; ++k) {
        const T cv = cs[tx][k];
#pragma unroll
        for (int p = 0; p < kPerThread; ++p) acc[p] += xs[ty + p * kThreadRowsStep][k] * cv;
      }
    }
    const bool col_ok = c0 + tx < M;
    const T csq = col_ok ? c_sq[c0 + tx] : T(0);
#pragma unroll
    for (int p = 0; p < kPerThread; ++p) {
      const int r = ty + p * kThreadRowsStep;
      const T xsq = row0 + r < N ? x_sq[row0 + r] : T(0);
      d2[r][tx] = col_ok ? parzen_sq_dist(xsq, csq, acc[p]) : infinity<T>();
    }
    __syncthreads();
    // One warp per row: each lane takes columns lane and lane + 32.
    for (int r = warp; r < kRows; r += kWarps) {
      const T d_lo = d2[r][lane], d_hi = d2[r][lane + 32];
      const T old_min = row_min[r];
      const T new_min = min(old_min, warp_min(min(d_lo, d_hi)));
      for (int64_t s = 0; s < S; ++s) {
        const T as = a[s];
        // exp(-inf) = 0 for padded columns; rescale is 0 on the first tile (old_min = inf, sum = 0).
        T part = fg_exp(-(d_lo - new_min) * as) + fg_exp(-(d_hi - new_min) * as);
        part = warp_sum(part);
        if (lane == 0) sums[r * S + s] = sums[r * S + s] * parzen_rescale(old_min, new_min, as) + part;
      }
      __syncwarp();
      if (lane == 0) row_min[r] = new_min;
    }
    __syncthreads();  // d2 and row_min are rewritten by the next tile
  }
  for (int64_t i = tid; i < kRows * S; i += kThreads) {
    const int r = static_cast<int>(i / S);
    const int64_t s = i % S;
    if (row0 + r < N) lse[(row0 + r) * S + s] = parzen_finish(row_min[r], sums[i], a[s]);
  }
}

}  // namespace

template <typename scalar_t>
void parzen_logsumexp_cuda_launch(const scalar_t* x, const scalar_t* centers, const scalar_t* x_sq,
                                  const scalar_t* c_sq, const scalar_t* a, int64_t N, int64_t M, int64_t D,
                                  int64_t S, scalar_t* lse, cudaStream_t stream) {
  if (N == 0) return;
  const int64_t blocks = (N + kRows - 1) / kRows;
  const size_t shared = sizeof(scalar_t) * (kRows + kRows * S);
  // Many sigmas in float64 can pass the default 48 KiB of shared memory per block.
  cudaFuncSetAttribute(parzen_logsumexp_kernel<scalar_t>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       static_cast<int>(shared));
  parzen_logsumexp_kernel<scalar_t><<<static_cast<unsigned>(blocks), kThreads, shared, stream>>>(
      x, centers, x_sq, c_sq, a, N, M, D, S, lse);
}

template void parzen_logsumexp_cuda_launch<float>(const float*, const float*, const float*, const float*,
                                                  const float*, int64_t, int64_t, int64_t, int64_t, float*,
                                                  cudaStream_t);
template void parzen_logsumexp_cuda_launch<double>(const double*, const double*, const double*, const double*,
                                                   const double*, int64_t, int64_t, int64_t, int64_t, double*,
                                                   cudaStream_t);

}  // namespace fastgan
