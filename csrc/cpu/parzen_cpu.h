#pragma once
#include <torch/extension.h>

namespace fastgan {

// lse [N, S] = logsumexp_j(-|x_i - mu_j|^2 / 2 sigma_s^2) for x [N, D], centers [M, D], sigmas [S], one
// floating dtype (float32 or float64). M = 0 gives -inf.
at::Tensor parzen_logsumexp_cpu(const at::Tensor& x, const at::Tensor& centers, const at::Tensor& sigmas);

// d(sum_is grad_is lse_is) / dx [N, D] = sum_j P_ij (mu_j - x_i), P_ij = sum_s grad_is / sigma_s^2 *
// exp(-|x_i - mu_j|^2 / 2 sigma_s^2 - lse_is), with lse from parzen_logsumexp_cpu.
at::Tensor parzen_logsumexp_backward_cpu(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& centers,
                                         const at::Tensor& sigmas, const at::Tensor& lse);

}  // namespace fastgan
