// CPU kernels of the Parzen-window log-sum-exp. Row blocks of x are shared among threads; each walks the
// centres in column blocks: one GEMM (dense_linear: oneDNN for float32) gives the tile's dot products x.mu,
// small enough to stay in L2, and the epilogue turns them into distances and folds them into every sigma's
// online log-sum-exp (common/parzen_math.h) before the next tile. Memory: the inputs, [N, S] and one tile
// at a time per thread; the N x M distance matrix never exists.
#include "cpu/parzen_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "common/checks.h"
#include "common/parzen_math.h"
#include "cpu/dense_linear.h"

namespace fastgan {
namespace {

// A 256 x 512 float32 tile (512 KiB) stays in L2 from the GEMM to the epilogue. Fused time / bare oneDNN GEMM
// at 2,000 x 10,000 x 784, 2 threads, by tile: 128 x 512: 1.17, 256 x 512: 1.10-1.13, 512 x 256: 1.13,
// 256 x 256: 1.15, 128 x 1024: 1.22, 64 x 1024: 1.27.
constexpr int64_t kMaxRowBlock = 256;
constexpr int64_t kColBlock = 512;
constexpr int64_t kLanes = 16;  // one AVX-512 register of floats; the vectorizer maps it to 2 AVX2 or 4 SSE ones

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
// One clone per ISA level, picked at load time: the build has no -march flag.
#define FASTGAN_ISA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTGAN_ISA_CLONES
#endif

// exp(x) for x <= 0, to 1e-7 relative (Cephes' expf polynomial), branch-free so GCC vectorizes the loops
// that call it; x < -87 gives exp(-87) ~ 1.6e-38 instead of less, far below a row sum's largest term 1.
inline __attribute__((always_inline)) float exp_nonpos(float x) {
  // max(x, -87) on the bit patterns: for x <= 0 a larger magnitude is a larger unsigned pattern, and an
  // integer min vectorizes where a float max would need -fno-trapping-math.
  const float floor_f = -87.f;
  uint32_t bits, floor_bits;
  std::memcpy(&bits, &x, 4);
  std::memcpy(&floor_bits, &floor_f, 4);
  bits = bits < floor_bits ? bits : floor_bits;
  std::memcpy(&x, &bits, 4);
  const float n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;  // round to nearest
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;                // x - n ln 2, two-part ln 2
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const int32_t scale_bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &scale_bits, 4);
  return p * scale;
}
inline __attribute__((always_inline)) double exp_nonpos(double x) { return std::exp(x); }

// Turns one row of dot products into squared distances in place; returns their minimum.
template <typename T>
inline __attribute__((always_inline)) T row_distances(T* d, const T* c_sq, T x_sq, int64_t n) {
  T lane_min[kLanes];
  std::fill(lane_min, lane_min + kLanes, std::numeric_limits<T>::infinity());
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) {
      d[j + l] = parzen_sq_dist(x_sq, c_sq[j + l], d[j + l]);
      lane_min[l] = lane_min[l] < d[j + l] ? lane_min[l] : d[j + l];
    }
  for (; j < n; ++j) {
    d[j] = parzen_sq_dist(x_sq, c_sq[j], d[j]);
    lane_min[0] = std::min(lane_min[0], d[j]);
  }
  return *std::min_element(lane_min, lane_min + kLanes);
}

// Adds sum_j exp(-(d_j - m) a_s) to sums[s] for every sigma; a[] ascends, so once a block of kLanes
// centres is negligible for one sigma it is for all later ones. acc: kLanes * S scratch.
template <typename T>
inline __attribute__((always_inline)) void row_sums(const T* __restrict d, int64_t n, T m, const T* __restrict a,
                                                    int64_t S, T* __restrict acc, double* __restrict sums) {
  std::fill(acc, acc + kLanes * S, T(0));
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    T t[kLanes];
    T t_min = std::numeric_limits<T>::infinity();
    for (int64_t l = 0; l < kLanes; ++l) {
      t[l] = d[j + l] - m;
      t_min = t_min < t[l] ? t_min : t[l];
    }
    for (int64_t s = 0; s < S && t_min * a[s] <= kParzenNegligibleNats; ++s)
      for (int64_t l = 0; l < kLanes; ++l) acc[s * kLanes + l] += exp_nonpos(-t[l] * a[s]);
  }
  for (; j < n; ++j)
    for (int64_t s = 0; s < S; ++s) acc[s * kLanes] += exp_nonpos(-(d[j] - m) * a[s]);
  for (int64_t s = 0; s < S; ++s) {
    double total = 0;
    for (int64_t l = 0; l < kLanes; ++l) total += acc[s * kLanes + l];
    sums[s] += total;
  }
}

// Folds one tile (rows x cols dot products, row stride cols) into the rows' running (min, sums).
template <typename T>
inline __attribute__((always_inline)) void tile_epilogue(T* tile, int64_t rows, int64_t cols, const T* x_sq,
                                                         const T* c_sq, const T* a, int64_t S, T* acc, T* row_min,
                                                         double* sums) {
  for (int64_t r = 0; r < rows; ++r) {
    T* d = tile + r * cols;
    const T m = std::min(row_min[r], row_distances(d, c_sq, x_sq[r], cols));
    for (int64_t s = 0; s < S; ++s) sums[r * S + s] *= parzen_rescale<double>(row_min[r], m, a[s]);
    row_min[r] = m;
    row_sums(d, cols, m, a, S, acc, sums + r * S);
  }
}

FASTGAN_ISA_CLONES void tile_epilogue_f32(float* tile, int64_t rows, int64_t cols, const float* x_sq,
                                          const float* c_sq, const float* a, int64_t S, float* acc, float* row_min,
                                          double* sums) {
  tile_epilogue(tile, rows, cols, x_sq, c_sq, a, S, acc, row_min, sums);
}

void tile_epilogue_any(float* tile, int64_t rows, int64_t cols, const float* x_sq, const float* c_sq, const float* a,
                       int64_t S, float* acc, float* row_min, double* sums) {
  tile_epilogue_f32(tile, rows, cols, x_sq, c_sq, a, S, acc, row_min, sums);
}
void tile_epilogue_any(double* tile, int64_t rows, int64_t cols, const double* x_sq, const double* c_sq,
                       const double* a, int64_t S, double* acc, double* row_min, double* sums) {
  tile_epilogue(tile, rows, cols, x_sq, c_sq, a, S, acc, row_min, sums);
}

// P_ij = sum_s coef_is exp(-d_ij a_s - lse_is) in place of the tile's dot products (coef = grad / sigma^2);
// adds each row's sum_j P_ij to p_sum.
template <typename T>
inline __attribute__((always_inline)) void backward_tile(T* tile, int64_t rows, int64_t cols, const T* x_sq,
                                                         const T* c_sq, const T* a, int64_t S, const T* coef,
                                                         const T* lse, T* p, T* p_sum) {
  for (int64_t r = 0; r < rows; ++r) {
    T* d = tile + r * cols;
    row_distances(d, c_sq, x_sq[r], cols);
    std::fill(p, p + cols, T(0));
    for (int64_t s = 0; s < S; ++s) {
      const T c = coef[r * S + s], shift = lse[r * S + s], as = a[s];
      for (int64_t j = 0; j < cols; ++j) p[j] += c * exp_nonpos(-d[j] * as - shift);  // <= 0 up to rounding
    }
    std::copy(p, p + cols, d);
    T total = 0;
    for (int64_t j = 0; j < cols; ++j) total += p[j];
    p_sum[r] += total;
  }
}

FASTGAN_ISA_CLONES void backward_tile_f32(float* tile, int64_t rows, int64_t cols, const float* x_sq,
                                          const float* c_sq, const float* a, int64_t S, const float* coef,
                                          const float* lse, float* p, float* p_sum) {
  backward_tile(tile, rows, cols, x_sq, c_sq, a, S, coef, lse, p, p_sum);
}

void backward_tile_any(float* tile, int64_t rows, int64_t cols, const float* x_sq, const float* c_sq, const float* a,
                       int64_t S, const float* coef, const float* lse, float* p, float* p_sum) {
  backward_tile_f32(tile, rows, cols, x_sq, c_sq, a, S, coef, lse, p, p_sum);
}
void backward_tile_any(double* tile, int64_t rows, int64_t cols, const double* x_sq, const double* c_sq,
                       const double* a, int64_t S, const double* coef, const double* lse, double* p,
                       double* p_sum) {
  backward_tile(tile, rows, cols, x_sq, c_sq, a, S, coef, lse, p, p_sum);
}

void check_inputs(const at::Tensor& x, const at::Tensor& centers, const at::Tensor& sigmas) {
  check_cpu_input(x, "x", 2, x);
  check_cpu_input(centers, "centers", 2, x);
  check_cpu_input(sigmas, "sigmas", 1, x);
  TORCH_CHECK(x.size(1) == centers.size(1), "centers has ", centers.size(1), " features but x has ", x.size(1));
}

// Rows per block: up to kMaxRowBlock, fewer when that would leave threads idle.
int64_t row_block(int64_t n) {
  const int64_t per_thread = (n + at::get_num_threads() - 1) / std::max(1, at::get_num_threads());
  return std::max<int64_t>(1, std::min(kMaxRowBlock, per_thread));
}

}  // namespace

at::Tensor parzen_logsumexp_cpu(const at::Tensor& x_in, const at::Tensor& centers_in, const at::Tensor& sigmas_in) {
  check_inputs(x_in, centers_in, sigmas_in);
  // Detached: the tiles' products must not record autograd nodes, and a NoGradGuard would not reach
  // at::parallel_for's worker threads.
  const at::Tensor x = x_in.detach().contiguous(), centers = centers_in.detach().contiguous();
  const int64_t N = x.size(0), M = centers.size(0), S = sigmas_in.numel();
  at::Tensor lse = at::empty({N, S}, x.options());
  if (N == 0) return lse;
  // Sigmas in descending order (a = 1 / 2 sigma^2 ascending) for row_sums' early exit.
  const at::Tensor order = std::get<1>(sigmas_in.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor a_sorted = 1 / (2 * sigmas_in.index_select(0, order).square());
  const at::Tensor x_sq = x.square().sum(1), c_sq = centers.square().sum(1);
  const int64_t rb = row_block(N);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "parzen_logsumexp_cpu", [&] {
    const scalar_t* a = a_sorted.data_ptr<scalar_t>();
    const int64_t* ord = order.data_ptr<int64_t>();
    at::parallel_for(0, (N + rb - 1) / rb, 1, [&](int64_t b0, int64_t b1) {
      std::vector<scalar_t> acc(kLanes * S), row_min(rb);
      std::vector<double> sums(rb * S);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r0 = b * rb, rows = std::min(rb, N - r0);
        std::fill(row_min.begin(), row_min.end(), std::numeric_limits<scalar_t>::infinity());
        std::fill(sums.begin(), sums.end(), 0.0);
        const at::Tensor x_blk = x.narrow(0, r0, rows);
        for (int64_t c0 = 0; c0 < M; c0 += kColBlock) {
          const int64_t cols = std::min(kColBlock, M - c0);
          const at::Tensor dots = dense_linear(x_blk, centers.narrow(0, c0, cols), std::nullopt);
          tile_epilogue_any(dots.data_ptr<scalar_t>(), rows, cols, x_sq.data_ptr<scalar_t>() + r0,
                            c_sq.data_ptr<scalar_t>() + c0, a, S, acc.data(), row_min.data(), sums.data());
        }
        scalar_t* out = lse.data_ptr<scalar_t>() + r0 * S;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t s = 0; s < S; ++s)
            out[r * S + ord[s]] = parzen_finish<double>(row_min[r], sums[r * S + s], a[s]);
      }
    });
  });
  return lse;
}

at::Tensor parzen_logsumexp_backward_cpu(const at::Tensor& grad_in, const at::Tensor& x_in,
                                         const at::Tensor& centers_in, const at::Tensor& sigmas,
                                         const at::Tensor& lse_in) {
  check_inputs(x_in, centers_in, sigmas);
  check_cpu_input(grad_in, "grad", 2, x_in);
  check_cpu_input(lse_in, "lse", 2, x_in);
  const int64_t N = x_in.size(0), M = centers_in.size(0), S = sigmas.numel();
  TORCH_CHECK(grad_in.size(0) == N && grad_in.size(1) == S && lse_in.sizes() == grad_in.sizes(),
              "grad and lse must be [", N, ", ", S, "], got ", grad_in.sizes(), " and ", lse_in.sizes());
  const at::Tensor x = x_in.detach().contiguous(), centers = centers_in.detach().contiguous();
  const at::Tensor lse = lse_in.detach().contiguous();
  const at::Tensor a = 1 / (2 * sigmas.square());
  const at::Tensor coef = (grad_in.detach() * (2 * a)).contiguous();  // grad / sigma^2
  const at::Tensor x_sq = x.square().sum(1), c_sq = centers.square().sum(1);
  // grad_x = P @ mu - x * rowsum(P), P built tile by tile. (rowsum(P) is sum_s coef_is only when lse covers
  // exactly these centres, not for a shard of them under a global lse.)
  at::Tensor grad_x = at::zeros_like(x);
  const int64_t rb = row_block(N);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "parzen_logsumexp_backward_cpu", [&] {
    at::parallel_for(0, (N + rb - 1) / rb, 1, [&](int64_t b0, int64_t b1) {
      std::vector<scalar_t> p(kColBlock), p_sum(rb);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r0 = b * rb, rows = std::min(rb, N - r0);
        std::fill(p_sum.begin(), p_sum.end(), scalar_t(0));
        const at::Tensor x_blk = x.narrow(0, r0, rows);
        at::Tensor g_blk = grad_x.narrow(0, r0, rows);
        for (int64_t c0 = 0; c0 < M; c0 += kColBlock) {
          const int64_t cols = std::min(kColBlock, M - c0);
          const at::Tensor c_blk = centers.narrow(0, c0, cols);
          const at::Tensor dots = dense_linear(x_blk, c_blk, std::nullopt);
          backward_tile_any(dots.data_ptr<scalar_t>(), rows, cols, x_sq.data_ptr<scalar_t>() + r0,
                            c_sq.data_ptr<scalar_t>() + c0, a.data_ptr<scalar_t>(), S,
                            coef.data_ptr<scalar_t>() + r0 * S, lse.data_ptr<scalar_t>() + r0 * S, p.data(),
                            p_sum.data());
          g_blk.add_(dense_linear(dots, c_blk.t(), std::nullopt));
        }
        g_blk.sub_(x_blk * at::from_blob(p_sum.data(), {rows, 1}, x.options()));
      }
    });
  });
  return grad_x;
}

}  // namespace fastgan
