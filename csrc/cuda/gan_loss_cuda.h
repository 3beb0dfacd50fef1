// Raw-pointer launchers of the GAN log-loss CUDA kernels: no torch headers, so nvcc compile-checks them
// on machines without a GPU or a CUDA build of torch. scalar_t: float, double, __half, __nv_bfloat16.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

namespace fastgan {

// Loss, per-logit gradient (skipped where grad_* is null) and stats [4] (mean D(real), mean D(fake),
// accuracy, #NaN). workspace holds blocks_for(n_real + n_fake) * kNumStats floats/doubles (acc type).
template <typename scalar_t>
void gan_logloss_cuda_launch(const scalar_t* real, int64_t n_real, const scalar_t* fake, int64_t n_fake,
                             double real_weight, double fake_weight, scalar_t* grad_real, scalar_t* grad_fake,
                             scalar_t* loss, float* stats, void* workspace, cudaStream_t stream);

// The same on logits = h @ weight + bias. workspace: gan_logloss_workspace_bytes(rows) bytes, plus
// (rows) acc values for the per-row gradient used by the dW reduction.
template <typename scalar_t>
void gan_logloss_linear_cuda_launch(const scalar_t* h_real, int64_t n_real, const scalar_t* h_fake, int64_t n_fake,
                                    int64_t features, const scalar_t* weight, const scalar_t* bias,
                                    double real_weight, double fake_weight, scalar_t* grad_h_real,
                                    scalar_t* grad_h_fake, scalar_t* grad_weight, scalar_t* grad_bias,
                                    scalar_t* loss, float* stats, void* workspace, cudaStream_t stream);

// Bytes of workspace the launchers above need for `rows` logits of element size `acc_bytes`.
int64_t gan_logloss_workspace_bytes(int64_t rows, int64_t acc_bytes);

}  // namespace fastgan
