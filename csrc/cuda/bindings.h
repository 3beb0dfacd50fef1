// Torch-tensor entry points of the CUDA kernels (csrc/cuda/*_bind.cu), built only where torch has CUDA.
#pragma once
#include <torch/extension.h>

#include <vector>

namespace fastgan {

std::vector<at::Tensor> gan_logloss_cuda(const at::Tensor& real, const at::Tensor& fake, double real_weight,
                                         double fake_weight, bool compute_grad);
std::vector<at::Tensor> gan_logloss_linear_cuda(const at::Tensor& h_real, const at::Tensor& h_fake,
                                                const at::Tensor& weight, const at::Tensor& bias, double real_weight,
                                                double fake_weight, bool compute_grad);

// lse [N, S] = logsumexp_j(-|x_i - mu_j|^2 / 2 sigma_s^2) (csrc/cuda/parzen_bind.cu).
at::Tensor parzen_logsumexp_cuda(const at::Tensor& x, const at::Tensor& centers, const at::Tensor& sigmas);

// Maxout + Philox dropout (csrc/cuda/maxout_bind.cu): {y, argmax int8}, grad_z, and the fused layer's {y, argmax}.
std::vector<at::Tensor> maxout_dropout_cuda(const at::Tensor& z, int64_t pieces, double p, int64_t seed,
                                            int64_t offset);
at::Tensor maxout_dropout_backward_cuda(const at::Tensor& grad_y, const at::Tensor& argmax, int64_t pieces, double p,
                                        int64_t seed, int64_t offset);
std::vector<at::Tensor> maxout_linear_cuda(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                           int64_t pieces, double p, int64_t seed, int64_t offset);

}  // namespace fastgan
