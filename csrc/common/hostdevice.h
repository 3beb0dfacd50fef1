// Host/device qualifiers and float/double math overloads that resolve the same way in g++ and nvcc,
// so the per-element math in common/*_math.h is one piece of code for the CPU and CUDA kernels.
#pragma once
#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define FASTGAN_HD __host__ __device__ __forceinline__
#else
#define FASTGAN_HD inline
#endif

namespace fastgan {

FASTGAN_HD float fg_exp(float x) { return expf(x); }
FASTGAN_HD double fg_exp(double x) { return exp(x); }
FASTGAN_HD float fg_log(float x) { return logf(x); }
FASTGAN_HD double fg_log(double x) { return log(x); }
FASTGAN_HD float fg_log1p(float x) { return log1pf(x); }
FASTGAN_HD double fg_log1p(double x) { return log1p(x); }
FASTGAN_HD float fg_abs(float x) { return fabsf(x); }
FASTGAN_HD double fg_abs(double x) { return fabs(x); }

}  // namespace fastgan
