#pragma once
#include <torch/extension.h>

#include <vector>

namespace fastgan {

// {loss [], grad_real [Nr], grad_fake [Nf], stats [4] float32: mean D(real), mean D(fake), accuracy, #NaN}.
// float32 runs on AVX-512 lanes where the CPU has them; allow_avx512 = false forces the AVX2 loop, so that
// tests can check both on one machine.
std::vector<at::Tensor> gan_logloss_cpu(const at::Tensor& real, const at::Tensor& fake, double real_weight,
                                        double fake_weight, bool compute_grad, bool allow_avx512 = true);

// The same loss on logits = h @ weight + bias, never stored:
// {loss, grad_h_real [Nr, H], grad_h_fake [Nf, H], grad_weight [H], grad_bias [1], stats}
std::vector<at::Tensor> gan_logloss_linear_cpu(const at::Tensor& h_real, const at::Tensor& h_fake,
                                               const at::Tensor& weight, const at::Tensor& bias, double real_weight,
                                               double fake_weight, bool compute_grad);

}  // namespace fastgan
