#pragma once
#include <torch/extension.h>

#include <optional>

namespace fastgan {

// x @ weight.T (+ bias) for 2-D x [M, K] and weight [N, K], either of them strided (a transposed view is
// read in place): the products of the generator's layers and of the CPU kernels' tiles. float32 goes
// through oneDNN's matmul, which picks its AVX-512 code by the CPU's features; MKL's sgemm, behind
// at::mm, picks AVX2 code on this AMD EPYC (AVX-512) and ran the paper's shapes at 50-56 GMAC/s a core
// against oneDNN's 100-126. Other dtypes, and torch builds without oneDNN, use at::addmm / at::mm.
at::Tensor dense_linear(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias);

// Whether float32 products go through oneDNN in this process: torch was built with it, and the route was not
// turned off. Off, they take at::addmm (MKL's sgemm), which is the faster on some CPUs: fastgan.backends
// measures both once per process (cpu_gemm_route) and sets the route.
bool dense_linear_uses_onednn();
void set_dense_linear_onednn(bool enabled);

}  // namespace fastgan
