// Raw-pointer launcher of the Parzen log-sum-exp CUDA kernel: no torch headers, so nvcc compile-checks it
// on machines without a GPU or a CUDA build of torch. scalar_t: float or double.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

namespace fastgan {

// lse [N, S] = logsumexp_j(-d_ij a_s), d_ij = max(x_sq_i + c_sq_j - 2 x_i.mu_j, 0), for x [N, D] and
// centers [M, D] row-major, their squared norms x_sq [N] and c_sq [M], and a_s = 1 / (2 sigma_s^2) [S].
template <typename scalar_t>
void parzen_logsumexp_cuda_launch(const scalar_t* x, const scalar_t* centers, const scalar_t* x_sq,
                                  const scalar_t* c_sq, const scalar_t* a, int64_t N, int64_t M, int64_t D,
                                  int64_t S, scalar_t* lse, cudaStream_t stream);

}  // namespace fastgan
