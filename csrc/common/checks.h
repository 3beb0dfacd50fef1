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

}  // namespace fastgan
