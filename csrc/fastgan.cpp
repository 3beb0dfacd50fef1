// The pybind11 module: one entry point per kernel and device. The ops' schemas, autograd and fake
// kernels are registered in Python (fastgan/ops/*.py) with torch.library.custom_op.
#include <torch/extension.h>

#include "cpu/gan_loss_cpu.h"
#ifdef WITH_CUDA
#include "cuda/bindings.h"
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "fastgan: fused kernels for Generative Adversarial Nets";
#ifdef WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  m.def("gan_logloss_cpu", &fastgan::gan_logloss_cpu, "GAN log-loss, its gradient and D's statistics (CPU)");
  m.def("gan_logloss_linear_cpu", &fastgan::gan_logloss_linear_cpu,
        "GAN log-loss on h @ weight + bias, with gradients for h, weight and bias (CPU)");
#ifdef WITH_CUDA
  m.def("gan_logloss_cuda", &fastgan::gan_logloss_cuda, "GAN log-loss (CUDA)");
  m.def("gan_logloss_linear_cuda", &fastgan::gan_logloss_linear_cuda, "GAN log-loss on a linear layer (CUDA)");
#endif
}
