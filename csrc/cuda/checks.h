// Preconditions of the CUDA entry points. The Python wrappers have already checked the user's arguments
// (with errors naming them); these guard direct calls into the extension.
#pragma once
#include <torch/extension.h>

namespace fastgan {

// t is a floating CUDA tensor of `dim` dimensions, on like's device and of like's dtype.
inline void check_cuda_input(const at::Tensor& t, const char* name, int64_t dim, const at::Tensor& like) {
  TORCH_CHECK(t.is_cuda() && t.device() == like.device(), name, " must be on ", like.device(), ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == like.scalar_type() && at::isFloatingType(t.scalar_type()), name, " must be ",
              like.scalar_type(), " (floating), got ", t.scalar_type());
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimension(s), got shape ", t.sizes());
}

}  // namespace fastgan
