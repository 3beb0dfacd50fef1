// CUDA kernels of the GAN log-loss. Pass 1: each thread takes logits in a grid-stride loop, writes the
// gradient and keeps the five sums of common/gan_loss_math.h; a block reduces them into one slot of
// the workspace. Pass 2: one block adds the slots in order (deterministic) and writes loss and stats.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/gan_loss_math.h"
#include "cuda/gan_loss_cuda.h"
#include "cuda/launch.cuh"

namespace fastgan {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;

template <typename acc_t>
__device__ void block_reduce_store(acc_t (&sums)[kNumStats], acc_t* out) {
  __shared__ acc_t shared[kNumStats][kThreads];
  for (int k = 0; k < kNumStats; ++k) shared[k][threadIdx.x] = sums[k];
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride)
      for (int k = 0; k < kNumStats; ++k) shared[k][threadIdx.x] += shared[k][threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    for (int k = 0; k < kNumStats; ++k) out[k] = shared[k][0];
}

template <typename acc_t>
__device__ void add_term(acc_t (&sums)[kNumStats], const LogLossTerm<acc_t>& t, bool is_real) {
  sums[kStatLoss] += t.loss;
  sums[is_real ? kStatProbReal : kStatProbFake] += t.prob;
  sums[kStatCorrect] += t.correct;
  sums[kStatNan] += t.nan;
}

template <typename scalar_t, typename acc_t>
__global__ void logloss_fwd_kernel(const scalar_t* __restrict__ real, int64_t n_real,
                                   const scalar_t* __restrict__ fake, int64_t n_fake, acc_t real_weight,
                                   acc_t fake_weight, scalar_t* __restrict__ grad_real,
                                   scalar_t* __restrict__ grad_fake, acc_t* __restrict__ block_sums) {
  acc_t sums[kNumStats] = {};
  const int64_t n = n_real + n_fake;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const bool is_real = i < n_real;
    const int64_t j = is_real ? i : i - n_real;
    const acc_t logit = static_cast<acc_t>(is_real ? real[j] : fake[j]);
    LogLossTerm<acc_t> t = logloss_term<acc_t>(logit, is_real, is_real ? real_weight : fake_weight);
    scalar_t* grad = is_real ? grad_real : grad_fake;
    if (grad) grad[j] = static_cast<scalar_t>(t.grad);
    add_term(sums, t, is_real);
  }
  block_reduce_store(sums, block_sums + blockIdx.x * kNumStats);
}

// One logit per warp: the lanes stride over the features for the dot product, lane 0 takes the loss
// term, and the lanes write d loss / d h = g w. g is kept per row for the dW pass.
template <typename scalar_t, typename acc_t>
__global__ void logloss_linear_fwd_kernel(const scalar_t* __restrict__ h_real, int64_t n_real,
                                          const scalar_t* __restrict__ h_fake, int64_t n_fake, int64_t features,
                                          const scalar_t* __restrict__ weight, const scalar_t* __restrict__ bias,
                                          acc_t real_weight, acc_t fake_weight, scalar_t* __restrict__ grad_h_real,
                                          scalar_t* __restrict__ grad_h_fake, acc_t* __restrict__ row_grad,
                                          acc_t* __restrict__ block_sums) {
  acc_t sums[kNumStats] = {};
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = kThreads / 32;
  const int64_t rows = n_real + n_fake;
  for (int64_t row = blockIdx.x * (int64_t)warps + warp; row < rows; row += (int64_t)gridDim.x * warps) {
    const bool is_real = row < n_real;
    const int64_t i = is_real ? row : row - n_real;
    const scalar_t* h = (is_real ? h_real : h_fake) + i * features;
    acc_t dot = 0;
    for (int64_t k = lane; k < features; k += 32) dot += static_cast<acc_t>(h[k]) * static_cast<acc_t>(weight[k]);
    for (int offset = 16; offset > 0; offset >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
    const acc_t logit = dot + static_cast<acc_t>(bias[0]);
    LogLossTerm<acc_t> t = logloss_term<acc_t>(logit, is_real, is_real ? real_weight : fake_weight);
    if (lane == 0) add_term(sums, t, is_real);
    scalar_t* gh = is_real ? grad_h_real : grad_h_fake;
    if (gh) {
      for (int64_t k = lane; k < features; k += 32)
        gh[i * features + k] = static_cast<scalar_t>(t.grad * static_cast<acc_t>(weight[k]));
      if (lane == 0) row_grad[row] = t.grad;
    }
  }
  block_reduce_store(sums, block_sums + blockIdx.x * kNumStats);
}

// d loss / d w_k = sum_rows g_row h_row,k: threads own features, so reads of h are coalesced.
template <typename scalar_t, typename acc_t>
__global__ void logloss_linear_dw_kernel(const scalar_t* __restrict__ h_real, int64_t n_real,
                                         const scalar_t* __restrict__ h_fake, int64_t n_fake, int64_t features,
                                         const acc_t* __restrict__ row_grad, scalar_t* __restrict__ grad_weight) {
  const int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (k >= features) return;
  acc_t acc = 0;
  for (int64_t i = 0; i < n_real; ++i) acc += row_grad[i] * static_cast<acc_t>(h_real[i * features + k]);
  for (int64_t i = 0; i < n_fake; ++i) acc += row_grad[n_real + i] * static_cast<acc_t>(h_fake[i * features + k]);
  grad_weight[k] = static_cast<scalar_t>(acc);
}

// Adds the block slots in order; also d loss / d b = sum_rows g when row_grad is given.
template <typename scalar_t, typename acc_t>
__global__ void logloss_finish_kernel(const acc_t* __restrict__ block_sums, int n_blocks, int64_t n_real,
                                      int64_t n_fake, const acc_t* __restrict__ row_grad,
                                      scalar_t* __restrict__ grad_bias, scalar_t* __restrict__ loss,
                                      float* __restrict__ stats) {
  acc_t sums[kNumStats] = {};
  for (int b = threadIdx.x; b < n_blocks; b += kThreads)
    for (int k = 0; k < kNumStats; ++k) sums[k] += block_sums[b * kNumStats + k];
  __shared__ acc_t total[kNumStats];
  block_reduce_store(sums, total);
  acc_t db = 0;
  if (row_grad)
    for (int64_t i = threadIdx.x; i < n_real + n_fake; i += kThreads) db += row_grad[i];
  acc_t db_sums[kNumStats] = {db};
  __shared__ acc_t db_total[kNumStats];
  __syncthreads();
  block_reduce_store(db_sums, db_total);
  __syncthreads();
  if (threadIdx.x == 0) {
    *loss = static_cast<scalar_t>(total[kStatLoss]);
    stats[0] = n_real ? static_cast<float>(total[kStatProbReal] / n_real) : 0.f;
    stats[1] = n_fake ? static_cast<float>(total[kStatProbFake] / n_fake) : 0.f;
    stats[2] = (n_real + n_fake) ? static_cast<float>(total[kStatCorrect] / (n_real + n_fake)) : 0.f;
    stats[3] = static_cast<float>(total[kStatNan]);
    if (row_grad && grad_bias) *grad_bias = static_cast<scalar_t>(db_total[0]);
  }
}

}  // namespace

int64_t gan_logloss_workspace_bytes(int64_t rows, int64_t acc_bytes) {
  return (static_cast<int64_t>(kMaxBlocks) * kNumStats + rows) * acc_bytes;
}

template <typename scalar_t>
void gan_logloss_cuda_launch(const scalar_t* real, int64_t n_real, const scalar_t* fake, int64_t n_fake,
                             double real_weight, double fake_weight, scalar_t* grad_real, scalar_t* grad_fake,
                             scalar_t* loss, float* stats, void* workspace, cudaStream_t stream) {
  using acc_t = typename Acc<scalar_t>::type;
  acc_t* block_sums = static_cast<acc_t*>(workspace);
  const int blocks = blocks_for(n_real + n_fake, kThreads, kMaxBlocks);
  logloss_fwd_kernel<scalar_t, acc_t><<<blocks, kThreads, 0, stream>>>(
      real, n_real, fake, n_fake, static_cast<acc_t>(real_weight), static_cast<acc_t>(fake_weight), grad_real,
      grad_fake, block_sums);
  logloss_finish_kernel<scalar_t, acc_t><<<1, kThreads, 0, stream>>>(block_sums, blocks, n_real, n_fake, nullptr,
                                                                     nullptr, loss, stats);
}

template <typename scalar_t>
void gan_logloss_linear_cuda_launch(const scalar_t* h_real, int64_t n_real, const scalar_t* h_fake, int64_t n_fake,
                                    int64_t features, const scalar_t* weight, const scalar_t* bias,
                                    double real_weight, double fake_weight, scalar_t* grad_h_real,
                                    scalar_t* grad_h_fake, scalar_t* grad_weight, scalar_t* grad_bias,
                                    scalar_t* loss, float* stats, void* workspace, cudaStream_t stream) {
  using acc_t = typename Acc<scalar_t>::type;
  acc_t* block_sums = static_cast<acc_t*>(workspace);
  acc_t* row_grad = grad_weight ? block_sums + kMaxBlocks * kNumStats : nullptr;
  const int64_t rows = n_real + n_fake;
  const int64_t row_blocks = (rows + kThreads / 32 - 1) / (kThreads / 32);
  const int blocks = static_cast<int>(row_blocks < 1 ? 1 : (row_blocks > kMaxBlocks ? kMaxBlocks : row_blocks));
  logloss_linear_fwd_kernel<scalar_t, acc_t><<<blocks, kThreads, 0, stream>>>(
      h_real, n_real, h_fake, n_fake, features, weight, bias, static_cast<acc_t>(real_weight),
      static_cast<acc_t>(fake_weight), grad_h_real, grad_h_fake, row_grad, block_sums);
  if (grad_weight && features > 0)
    logloss_linear_dw_kernel<scalar_t, acc_t><<<(features + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
        h_real, n_real, h_fake, n_fake, features, row_grad, grad_weight);
  logloss_finish_kernel<scalar_t, acc_t><<<1, kThreads, 0, stream>>>(block_sums, blocks, n_real, n_fake, row_grad,
                                                                     grad_bias, loss, stats);
}

#define FASTGAN_INSTANTIATE(T)                                                                                 \
  template void gan_logloss_cuda_launch<T>(const T*, int64_t, const T*, int64_t, double, double, T*, T*, T*,     \
                                           float*, void*, cudaStream_t);                                        \
  template void gan_logloss_linear_cuda_launch<T>(const T*, int64_t, const T*, int64_t, int64_t, const T*,       \
                                                  const T*, double, double, T*, T*, T*, T*, T*, float*, void*,  \
                                                  cudaStream_t);
FASTGAN_INSTANTIATE(float)
FASTGAN_INSTANTIATE(double)
FASTGAN_INSTANTIATE(__half)
FASTGAN_INSTANTIATE(__nv_bfloat16)
#undef FASTGAN_INSTANTIATE

}  // namespace fastgan
