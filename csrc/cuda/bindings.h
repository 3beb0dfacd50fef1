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

}  // namespace fastgan
