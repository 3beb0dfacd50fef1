// Preconditions of the extension's entry points, shared by the CPU kernels (csrc/cpu) and the CUDA bindings
// (csrc/cuda/*_bind.cu). The Python wrappers have already checked the user's arguments, with errors naming
// them; these guard direct calls into the extension, so a bad call raises instead of reading out of bounds.
#pragma once
#include <torch/extension.h>

#include "common/maxout_math.h"

namespace fastgan {

// t is a float32/float64 CPU tensor of `dim` dimensions with like's dtype (pass t itself to skip that).
inline void check_cpu_input(const at::Tensor& t, const char* name, int64_t dim, const at::Tensor& like) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, name,
              " must be float32 or float64, got ", t.scalar_type());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " must have dtype ", like.scalar_type(), ", got ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimension(s), got shape ", t.sizes());
}

// t is a floating CUDA tensor of `dim` dimensions, on like's device and of like's dtype.
inline void check_cuda_input(const at::Tensor& t, const char* name, int64_t dim, const at::Tensor& like) {
  TORCH_CHECK(t.is_cuda() && t.device() == like.device(), name, " must be on ", like.device(), ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == like.scalar_type() && at::isFloatingType(t.scalar_type()), name, " must be ",
              like.scalar_type(), " (floating), got ", t.scalar_type());
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimension(s), got shape ", t.sizes());
}

// The maxout kernels' shared arguments: the piece count fits the int8 argmax, p a drop probability.
inline void check_dropout(int64_t pieces, double p, int64_t seed, int64_t offset) {
  TORCH_CHECK(pieces >= 1 && pieces <= kMaxPieces, "pieces must be in [1, ", kMaxPieces, "] (int8 argmax), got ",
              pieces);
  TORCH_CHECK(p >= 0 && p < 1, "p must be in [0, 1), got ", p);
  TORCH_CHECK(seed >= 0 && offset >= 0, "seed and offset must be >= 0, got ", seed, " and ", offset);
}

// maxout_dropout's arguments: z [R, U*K] or [R, U*K, inner], with `check` (check_cpu_input or check_cuda_input)
// for its device and dtype.
template <typename Check>
void check_maxout_args(Check check, const at::Tensor& z, int64_t pieces, double p, int64_t seed, int64_t offset) {
  TORCH_CHECK(z.dim() == 2 || z.dim() == 3, "z must be [R, U*K] or [R, U*K, inner], got shape ", z.sizes());
  check(z, "z", z.dim(), z);
  check_dropout(pieces, p, seed, offset);
  TORCH_CHECK(z.size(1) % pieces == 0, "z's dim 1 must be a multiple of pieces=", pieces, ", got shape ", z.sizes());
}

// maxout_dropout_backward's arguments: grad_y [R, U] or [R, U, inner] and the forward's int8 argmax of its shape,
// on its device.
template <typename Check>
void check_maxout_backward_args(Check check, const at::Tensor& grad_y, const at::Tensor& argmax, int64_t pieces,
                                double p, int64_t seed, int64_t offset) {
  TORCH_CHECK(grad_y.dim() == 2 || grad_y.dim() == 3, "grad_y must be [R, U] or [R, U, inner], got shape ",
              grad_y.sizes());
  check(grad_y, "grad_y", grad_y.dim(), grad_y);
  check_dropout(pieces, p, seed, offset);
  TORCH_CHECK(argmax.device() == grad_y.device() && argmax.scalar_type() == at::kChar &&
                  argmax.sizes() == grad_y.sizes(),
              "argmax must be int8 of grad_y's shape ", grad_y.sizes(), " on its device, got ", argmax.scalar_type(),
              " ", argmax.sizes(), " on ", argmax.device());
}

// maxout_linear's arguments, x [R, D], weight [U*K, D], bias [U*K], with `check` (check_cpu_input or
// check_cuda_input) for each tensor's device and dtype.
template <typename Check>
void check_maxout_linear_args(Check check, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                              int64_t pieces, double p, int64_t seed, int64_t offset) {
  check(x, "x", 2, x);
  check(weight, "weight", 2, x);
  check(bias, "bias", 1, x);
  check_dropout(pieces, p, seed, offset);
  TORCH_CHECK(weight.size(0) % pieces == 0, "weight's rows must be a multiple of pieces=", pieces, ", got shape ",
              weight.sizes());
  TORCH_CHECK(x.size(1) == weight.size(1), "x must have weight's ", weight.size(1), " columns, got shape ",
              x.sizes());
  TORCH_CHECK(bias.size(0) == weight.size(0), "bias must have weight's ", weight.size(0), " rows, got shape ",
              bias.sizes());
}

// The fused linear log-loss's arguments: h_real [Nr, H], h_fake [Nf, H], weight [H], bias [1].
template <typename Check>
void check_linear_loss_args(Check check, const at::Tensor& h_real, const at::Tensor& h_fake, const at::Tensor& weight,
                            const at::Tensor& bias) {
  check(weight, "weight", 1, weight);
  check(h_real, "h_real", 2, weight);
  check(h_fake, "h_fake", 2, weight);
  check(bias, "bias", 1, weight);
  const int64_t H = weight.size(0);
  TORCH_CHECK(h_real.size(1) == H && h_fake.size(1) == H, "h_real and h_fake must have ", H,
              " features (weight's size), got ", h_real.sizes(), " and ", h_fake.sizes());
  TORCH_CHECK(bias.numel() == 1, "bias must have one element, got shape ", bias.sizes());
}

}  // namespace fastgan
