// Torch wrapper of csrc/cuda/parzen_cuda.cu: checks, norms, allocation, stream, dtype dispatch.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda/bindings.h"
#include "common/checks.h"
#include "cuda/parzen_cuda.h"

namespace fastgan {

at::Tensor parzen_logsumexp_cuda(const at::Tensor& x_in, const at::Tensor& centers_in, const at::Tensor& sigmas) {
  check_cuda_input(x_in, "x", 2, x_in);
  check_cuda_input(centers_in, "centers", 2, x_in);
  check_cuda_input(sigmas, "sigmas", 1, x_in);
  TORCH_CHECK(x_in.size(1) == centers_in.size(1), "centers has ", centers_in.size(1), " features but x has ",
              x_in.size(1));
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.detach().contiguous(), centers = centers_in.detach().contiguous();
  const at::Tensor x_sq = x.square().sum(1), c_sq = centers.square().sum(1);
  const at::Tensor a = (1 / (2 * sigmas.detach().square())).contiguous();
  at::Tensor lse = at::empty({x.size(0), sigmas.numel()}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "parzen_logsumexp_cuda", [&] {
    parzen_logsumexp_cuda_launch<scalar_t>(x.data_ptr<scalar_t>(), centers.data_ptr<scalar_t>(),
                                           x_sq.data_ptr<scalar_t>(), c_sq.data_ptr<scalar_t>(),
                                           a.data_ptr<scalar_t>(), x.size(0), centers.size(0), x.size(1),
                                           sigmas.numel(), lse.data_ptr<scalar_t>(),
                                           c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return lse;
}

}  // namespace fastgan
