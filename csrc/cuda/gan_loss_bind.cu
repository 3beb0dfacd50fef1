// Torch wrappers of csrc/cuda/gan_loss_cuda.cu: checks, allocation, stream, dtype dispatch.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/bindings.h"
#include "common/checks.h"
#include "cuda/cuda_types.h"
#include "cuda/gan_loss_cuda.h"

namespace fastgan {
namespace {

at::Tensor workspace(const at::Tensor& like, int64_t rows) {
  const int64_t acc_bytes = like.scalar_type() == at::kDouble ? 8 : 4;
  return at::empty({gan_logloss_workspace_bytes(rows, acc_bytes)}, like.options().dtype(at::kByte));
}

}  // namespace

std::vector<at::Tensor> gan_logloss_cuda(const at::Tensor& real_in, const at::Tensor& fake_in, double real_weight,
                                         double fake_weight, bool compute_grad) {
  check_cuda_input(real_in, "real", 1, real_in);
  check_cuda_input(fake_in, "fake", 1, real_in);
  const c10::cuda::CUDAGuard guard(real_in.device());
  at::Tensor real = real_in.contiguous(), fake = fake_in.contiguous();
  at::Tensor grad_real = compute_grad ? at::empty_like(real) : at::empty({0}, real.options());
  at::Tensor grad_fake = compute_grad ? at::empty_like(fake) : at::empty({0}, fake.options());
  at::Tensor loss = at::empty({}, real.options());
  at::Tensor stats = at::empty({4}, real.options().dtype(at::kFloat));
  at::Tensor ws = workspace(real, 0);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, real.scalar_type(), "gan_logloss_cuda", [&] {
    using T = typename CudaType<scalar_t>::type;
    gan_logloss_cuda_launch<T>(
        reinterpret_cast<const T*>(real.data_ptr<scalar_t>()), real.numel(),
        reinterpret_cast<const T*>(fake.data_ptr<scalar_t>()), fake.numel(), real_weight, fake_weight,
        compute_grad ? reinterpret_cast<T*>(grad_real.data_ptr<scalar_t>()) : nullptr,
        compute_grad ? reinterpret_cast<T*>(grad_fake.data_ptr<scalar_t>()) : nullptr,
        reinterpret_cast<T*>(loss.data_ptr<scalar_t>()), stats.data_ptr<float>(), ws.data_ptr(),
        c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {loss, grad_real, grad_fake, stats};
}

std::vector<at::Tensor> gan_logloss_linear_cuda(const at::Tensor& h_real_in, const at::Tensor& h_fake_in,
                                                const at::Tensor& weight_in, const at::Tensor& bias_in,
                                                double real_weight, double fake_weight, bool compute_grad) {
  check_linear_loss_args(check_cuda_input, h_real_in, h_fake_in, weight_in, bias_in);
  const int64_t H = weight_in.size(0);
  const c10::cuda::CUDAGuard guard(weight_in.device());
  at::Tensor h_real = h_real_in.contiguous(), h_fake = h_fake_in.contiguous();
  at::Tensor weight = weight_in.contiguous(), bias = bias_in.contiguous();
  auto grad_like = [&](const at::Tensor& t) { return compute_grad ? at::empty_like(t) : at::empty({0}, t.options()); };
  at::Tensor grad_h_real = grad_like(h_real), grad_h_fake = grad_like(h_fake);
  at::Tensor grad_weight = grad_like(weight), grad_bias = grad_like(bias);
  at::Tensor loss = at::empty({}, weight.options());
  at::Tensor stats = at::empty({4}, weight.options().dtype(at::kFloat));
  at::Tensor ws = workspace(weight, h_real.size(0) + h_fake.size(0));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, weight.scalar_type(), "gan_logloss_linear_cuda", [&] {
    using T = typename CudaType<scalar_t>::type;
    auto ptr = [&](at::Tensor& t) { return compute_grad ? reinterpret_cast<T*>(t.data_ptr<scalar_t>()) : nullptr; };
    gan_logloss_linear_cuda_launch<T>(
        reinterpret_cast<const T*>(h_real.data_ptr<scalar_t>()), h_real.size(0),
        reinterpret_cast<const T*>(h_fake.data_ptr<scalar_t>()), h_fake.size(0), H,
        reinterpret_cast<const T*>(weight.data_ptr<scalar_t>()), reinterpret_cast<const T*>(bias.data_ptr<scalar_t>()),
        real_weight, fake_weight, ptr(grad_h_real), ptr(grad_h_fake), ptr(grad_weight), ptr(grad_bias),
        reinterpret_cast<T*>(loss.data_ptr<scalar_t>()), stats.data_ptr<float>(), ws.data_ptr(),
        c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {loss, grad_h_real, grad_h_fake, grad_weight, grad_bias, stats};
}

}  // namespace fastgan
