#pragma once
#include <torch/extension.h>

#include <vector>

namespace fastgan {

// {y [R, U(, inner)], argmax int8 of y's shape} of maxout over `pieces` consecutive channels (dim 1) of
// z [R, U*K] or [R, U*K, inner], then dropout p with the Philox mask of (seed, offset); see
// common/maxout_math.h.
std::vector<at::Tensor> maxout_dropout_cpu(const at::Tensor& z, int64_t pieces, double p, int64_t seed,
                                           int64_t offset);

// grad_z [R, U*K(, inner)]: grad_y [R, U(, inner)] times the regenerated mask / (1-p), on each argmax piece.
at::Tensor maxout_dropout_backward_cpu(const at::Tensor& grad_y, const at::Tensor& argmax, int64_t pieces, double p,
                                       int64_t seed, int64_t offset);

// maxout_dropout_cpu(x @ weight.T + bias): the GEMM runs in tiles whose epilogue takes the max and the
// dropout while the tile is in cache, so z is never written out. x [R, D], weight [U*K, D], bias [U*K].
std::vector<at::Tensor> maxout_linear_cpu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                          int64_t pieces, double p, int64_t seed, int64_t offset);

// {grad_x [R, D], grad_weight [U*K, D], grad_bias [U*K]} of maxout_linear_cpu, each an empty tensor where
// needs_grad says so. grad_z is never formed: each kept unit sends its gradient to one piece, so the
// products run over the (1-p)/K of grad_z that is not zero.
std::vector<at::Tensor> maxout_linear_backward_cpu(const at::Tensor& grad_y, const at::Tensor& argmax,
                                                   const at::Tensor& x, const at::Tensor& weight, int64_t pieces,
                                                   double p, int64_t seed, int64_t offset,
                                                   std::vector<bool> needs_grad);

}  // namespace fastgan
