// Torch wrappers of csrc/cuda/maxout_cuda.cu: checks, allocation, stream, dtype dispatch. Only c10/cuda
// headers (not ATen/cuda/CUDAContext.h, which needs cuSPARSE), so nvcc can compile-check it on this machine.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/bindings.h"
#include "common/checks.h"
#include "cuda/cuda_types.h"
#include "cuda/maxout_cuda.h"

namespace fastgan {
namespace {

template <typename scalar_t>
auto cuda_ptr(const at::Tensor& t) {
  return reinterpret_cast<typename CudaType<scalar_t>::type*>(t.data_ptr<scalar_t>());
}

}  // namespace

std::vector<at::Tensor> maxout_dropout_cuda(const at::Tensor& z_in, int64_t pieces, double p, int64_t seed,
                                            int64_t offset) {
  check_maxout_args(check_cuda_input, z_in, pieces, p, seed, offset);
  const c10::cuda::CUDAGuard guard(z_in.device());
  const at::Tensor z = z_in.contiguous();
  const int64_t inner = z.dim() == 3 ? z.size(2) : 1;
  std::vector<int64_t> shape = z.sizes().vec();
  shape[1] /= pieces;  // y [R, U(, inner)]
  at::Tensor y = at::empty(shape, z.options());
  at::Tensor argmax = at::empty(shape, z.options().dtype(at::kChar));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "maxout_dropout_cuda", [&] {
    maxout_dropout_cuda_launch(cuda_ptr<scalar_t>(z), y.numel(), pieces, inner, p, seed, offset, cuda_ptr<scalar_t>(y),
                               argmax.data_ptr<int8_t>(), c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {y, argmax};
}

at::Tensor maxout_dropout_backward_cuda(const at::Tensor& grad_y_in, const at::Tensor& argmax_in, int64_t pieces,
                                        double p, int64_t seed, int64_t offset) {
  check_maxout_backward_args(check_cuda_input, grad_y_in, argmax_in, pieces, p, seed, offset);
  const c10::cuda::CUDAGuard guard(grad_y_in.device());
  const at::Tensor grad_y = grad_y_in.contiguous(), argmax = argmax_in.contiguous();
  const int64_t inner = grad_y.dim() == 3 ? grad_y.size(2) : 1;
  std::vector<int64_t> shape = grad_y.sizes().vec();
  shape[1] *= pieces;  // grad_z [R, U*K(, inner)]
  at::Tensor grad_z = at::empty(shape, grad_y.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_y.scalar_type(), "maxout_dropout_backward_cuda", [&] {
    maxout_dropout_backward_cuda_launch(cuda_ptr<scalar_t>(grad_y), argmax.data_ptr<int8_t>(), grad_y.numel(), pieces,
                                        inner, p, seed, offset, cuda_ptr<scalar_t>(grad_z),
                                        c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad_z;
}

std::vector<at::Tensor> maxout_linear_cuda(const at::Tensor& x_in, const at::Tensor& weight_in,
                                           const at::Tensor& bias_in, int64_t pieces, double p, int64_t seed,
                                           int64_t offset) {
  check_maxout_linear_args(check_cuda_input, x_in, weight_in, bias_in, pieces, p, seed, offset);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), weight = weight_in.contiguous(), bias = bias_in.contiguous();
  const int64_t rows = x.size(0), units = weight.size(0) / pieces;
  at::Tensor y = at::empty({rows, units}, x.options());
  at::Tensor argmax = at::empty({rows, units}, x.options().dtype(at::kChar));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "maxout_linear_cuda", [&] {
    maxout_linear_cuda_launch(cuda_ptr<scalar_t>(x), cuda_ptr<scalar_t>(weight), cuda_ptr<scalar_t>(bias), rows,
                              x.size(1), units, pieces, p, seed, offset, cuda_ptr<scalar_t>(y),
                              argmax.data_ptr<int8_t>(), c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {y, argmax};
}

}  // namespace fastgan
