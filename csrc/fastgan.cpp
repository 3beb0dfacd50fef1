// The pybind11 module: one entry point per kernel and device. The ops' schemas, autograd and fake
// kernels are registered in Python (fastgan/ops/*.py) with torch.library.custom_op.
#include <torch/extension.h>

#include "common/maxout_math.h"
#include "cpu/avx512_dispatch.h"
#include "cpu/dense_linear.h"
#include "cpu/gan_loss_cpu.h"
#include "cpu/maxout_cpu.h"
#include "cpu/parzen_cpu.h"
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
  m.attr("max_pieces") = fastgan::kMaxPieces;
  m.def("gan_logloss_cpu", &fastgan::gan_logloss_cpu, "GAN log-loss, its gradient and D's statistics (CPU)",
        py::arg("real"), py::arg("fake"), py::arg("real_weight"), py::arg("fake_weight"), py::arg("compute_grad"),
        py::arg("allow_avx512") = true);
  m.def("has_avx512", &fastgan::has_avx512, "whether this CPU runs the AVX-512 loops (checked at run time)");
  m.def("gan_logloss_linear_cpu", &fastgan::gan_logloss_linear_cpu,
        "GAN log-loss on h @ weight + bias, with gradients for h, weight and bias (CPU)");
  m.def("linear_cpu", &fastgan::dense_linear, "x @ weight.T (+ bias); float32 through oneDNN's matmul (CPU)",
        py::arg("x"), py::arg("weight"), py::arg("bias"));
  m.def("linear_uses_onednn", &fastgan::dense_linear_uses_onednn,
        "whether float32 CPU products go through oneDNN (torch was built with it, and the route is on)");
  m.def("set_linear_onednn", &fastgan::set_dense_linear_onednn,
        "route float32 CPU products through oneDNN (True) or at::addmm, MKL's sgemm (False)", py::arg("enabled"));
  m.def("maxout_dropout_cpu", &fastgan::maxout_dropout_cpu, "maxout + Philox dropout, with the int8 argmax (CPU)");
  m.def("maxout_dropout_backward_cpu", &fastgan::maxout_dropout_backward_cpu,
        "maxout + dropout backward, mask regenerated from seed and offset (CPU)");
  m.def("maxout_linear_cpu", &fastgan::maxout_linear_cpu,
        "maxout + dropout of x @ weight.T + bias, GEMM in tiles with the epilogue in cache (CPU)");
  m.def("maxout_linear_backward_cpu", &fastgan::maxout_linear_backward_cpu,
        "maxout_linear backward over the nonzero part of grad_z only: one piece per kept unit (CPU)");
  m.def("parzen_logsumexp_cpu", &fastgan::parzen_logsumexp_cpu,
        "Parzen log-sum-exp over the centres for every sigma, GEMM tiles with an online-LSE epilogue (CPU)");
  m.def("parzen_logsumexp_backward_cpu", &fastgan::parzen_logsumexp_backward_cpu,
        "gradient of the Parzen log-sum-exp with respect to x, a second blocked pass (CPU)");
#ifdef WITH_CUDA
  m.def("gan_logloss_cuda", &fastgan::gan_logloss_cuda, "GAN log-loss (CUDA)");
  m.def("gan_logloss_linear_cuda", &fastgan::gan_logloss_linear_cuda, "GAN log-loss on a linear layer (CUDA)");
  m.def("parzen_logsumexp_cuda", &fastgan::parzen_logsumexp_cuda, "Parzen log-sum-exp for every sigma (CUDA)");
  m.def("maxout_dropout_cuda", &fastgan::maxout_dropout_cuda, "maxout + Philox dropout (CUDA)");
  m.def("maxout_dropout_backward_cuda", &fastgan::maxout_dropout_backward_cuda, "maxout + dropout backward (CUDA)");
  m.def("maxout_linear_cuda", &fastgan::maxout_linear_cuda, "maxout + dropout of a linear layer, z not stored (CUDA)");
#endif
}
