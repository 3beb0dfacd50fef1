// The Parzen-window log-sum-exp's per-element math, shared by the CPU and CUDA kernels.
//
// Each row keeps, over the centres seen so far, the minimum squared distance m and for every sigma
// sum_s = sum_j exp(-(d_j - m) a_s), a_s = 1 / (2 sigma_s^2): the largest term is exp(0) = 1, so nothing
// overflows or underflows to -inf however small sigma is; a new minimum rescales the sums. One minimum
// serves every sigma because max_j(-d_j a_s) = -min_j(d_j) a_s.
#pragma once
#include "common/hostdevice.h"

namespace fastgan {

// A term more than this many nats below the row's largest one is < exp(-64) ~ 1.6e-28 of it: skipped,
// together 10^12 of them move the sum by < 2e-16 of itself.
constexpr float kParzenNegligibleNats = 64.f;

// Squared distance from the GEMM's dot product: |x|^2 + |mu|^2 - 2 x.mu, clamped at 0 (cancellation
// can make it slightly negative when x is at or near mu).
template <typename T>
FASTGAN_HD T parzen_sq_dist(T x_sq, T c_sq, T dot) {
  const T d = x_sq + c_sq - T(2) * dot;
  return d > T(0) ? d : T(0);
}

// 1 / (2 sigma^2), the factor every exponent is multiplied by.
template <typename T>
FASTGAN_HD T parzen_inv_two_var(T sigma) {
  return T(1) / (T(2) * sigma * sigma);
}

// The factor that moves a running sum from minimum old_min to new_min <= old_min (0 on the first tile,
// where old_min is +inf and the sum is still 0).
template <typename T>
FASTGAN_HD T parzen_rescale(T old_min, T new_min, T inv_two_var) {
  return old_min == new_min ? T(1) : fg_exp((new_min - old_min) * inv_two_var);
}

// lse = log sum_j exp(-d_j a) = -m a + log(sum).
template <typename T>
FASTGAN_HD T parzen_finish(T min_d2, T sum, T inv_two_var) {
  return -min_d2 * inv_two_var + fg_log(sum);
}

}  // namespace fastgan
