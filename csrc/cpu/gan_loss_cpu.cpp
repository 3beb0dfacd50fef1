// CPU kernels of the GAN log-loss: one pass over the logits computes the loss, its gradient (the
// backward pass only scales it) and D's statistics. Sums are taken per fixed-size chunk in double and
// added in chunk order, so results do not depend on the thread count.
#include "cpu/gan_loss_cpu.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <array>
#include <type_traits>

#include "common/checks.h"
#include "common/gan_loss_math.h"
#include "cpu/avx512_dispatch.h"

namespace fastgan {
namespace {

using Sums = std::array<double, kNumStats>;

// 16k logits per chunk: large enough that at::parallel_for's per-chunk overhead vanishes, small enough
// that 1M logits give 2 cores 64 chunks to share. Below 4 chunks the call stays on the calling thread:
// waking the OpenMP team costs more than the paper's 200 logits take.
constexpr int64_t kChunk = 16384;
constexpr int64_t kParallelChunks = 4;

template <typename scalar_t>
void accumulate(Sums& s, const LogLossTerm<scalar_t>& t, bool target_real) {
  s[kStatLoss] += t.loss;
  s[target_real ? kStatProbReal : kStatProbFake] += t.prob;
  s[kStatCorrect] += t.correct;
  s[kStatNan] += t.nan;
}

// log1p(e) = e q(e) for e = exp(-|x|) in [0, 1], q the degree-8 minimax polynomial of log1p(e) / e on
// [0, 1] (relative error 3.0e-8, under half a float ulp; fitted with mpmath's Remez exchange). Sleef's
// log1pf cost 4x everything else in the loop (3.9 ms vs 0.9 ms for 2M floats on one AVX2 core), and the
// series log1p(e) = 2 atanh(e / (2 + e)) needs a division: without it the AVX2 loop runs 10% faster.
constexpr float kLog1pCoeffs[] = {0.9999999698796846f,  -0.4999949313968335f, 0.33319096791560926f,
                                  -0.2484298210970902f, 0.19106006444399673f, -0.13663245295851173f,
                                  0.0782259478173932f,  -0.02950523727631827f, 0.00523269410982686f};
constexpr int kLog1pDegree = sizeof(kLog1pCoeffs) / sizeof(float) - 1;

inline at::vec::Vectorized<float> log1p_unit(const at::vec::Vectorized<float>& e) {
  using Vec = at::vec::Vectorized<float>;
  Vec q(kLog1pCoeffs[kLog1pDegree]);
  for (int k = kLog1pDegree - 1; k >= 0; --k) q = at::vec::fmadd(q, e, Vec(kLog1pCoeffs[k]));
  return q * e;
}
inline at::vec::Vectorized<double> log1p_unit(const at::vec::Vectorized<double>& e) { return e.log1p(); }

// Logits [begin, end) one by one through logloss_term: the tail that does not fill a vector.
template <typename scalar_t>
void add_tail(const scalar_t* logits, scalar_t* grad, int64_t begin, int64_t end, bool target_real,
              scalar_t weight, Sums& sums) {
  for (int64_t i = begin; i < end; ++i) {
    LogLossTerm<scalar_t> t = logloss_term<scalar_t>(logits[i], target_real, weight);
    if (grad) grad[i] = t.grad;
    accumulate(sums, t, target_real);
  }
}

// The same math as logloss_term (common/gan_loss_math.h), on at::vec lanes (AVX2 where the build
// found it); the tail that does not fill a vector goes through add_tail. exp is torch's
// exp_u20 (2 ulp; 0.47 ms vs 0.75 ms for 2M floats). Lanes accumulate in scalar_t over groups of up to
// 32 vectors and then in double, so float32 sums of 1M terms keep ~1e-7 relative error.
template <typename scalar_t>
void logloss_range(const scalar_t* logits, scalar_t* grad, int64_t begin, int64_t end, bool target_real,
                   scalar_t weight, Sums& sums) {
  using Vec = at::vec::Vectorized<scalar_t>;
  constexpr int64_t kLanes = Vec::size();
  const Vec zero(0), one(1), w(weight), sign(target_real ? -1 : 1);
  int64_t i = begin;
  while (end - i >= kLanes) {
    const int64_t group_end = i + std::min<int64_t>(32 * kLanes, (end - i) / kLanes * kLanes);
    Vec loss(0), prob(0), correct(0), nan(0);
    for (; i < group_end; i += kLanes) {
      const Vec x = Vec::loadu(logits + i), is_nan = x.isnan();
      const Vec e = (zero - x.abs()).exp_u20() | is_nan;  // exp_u20 maps NaN to a number; NaN must stay NaN
      const Vec positive = x >= zero;
      const Vec big = one / (one + e), small = e * big;  // sigmoid(|x|), sigmoid(-|x|)
      const Vec p = Vec::blendv(small, big, positive);           // sigmoid(x)
      // softplus(sign x) = max(sign x, 0) + log1p(e); d/dx = -sigmoid(-x) (real) or sigmoid(x) (fake)
      loss += at::vec::maximum(sign * x, zero) + log1p_unit(e);
      if (grad) {
        const Vec g = target_real ? zero - Vec::blendv(big, small, positive) : p;
        (w * g).store(grad + i);
      }
      prob += p;
      correct += (target_real ? x > zero : x < zero) & one;
      nan += is_nan & one;
    }
    auto add = [](const Vec& v) {
      scalar_t lanes[kLanes];
      v.store(lanes);
      double total = 0;
      for (int64_t k = 0; k < kLanes; ++k) total += lanes[k];
      return total;
    };
    sums[kStatLoss] += static_cast<double>(weight) * add(loss);
    sums[target_real ? kStatProbReal : kStatProbFake] += add(prob);
    sums[kStatCorrect] += add(correct);
    sums[kStatNan] += add(nan);
  }
  add_tail(logits, grad, i, end, target_real, weight, sums);
}

#ifdef FASTGAN_AVX512_DISPATCH
// float32 on 16 AVX-512 lanes, for CPUs that have them (has_avx512()): 3x faster than the AVX2 loop
// above (0.53 vs 1.59 ms for 1M logits per side with gradients, one core here). Same math, with what
// AVX-512 adds: a 16-entry table in one register for exp, scalef for its power of two (exact down to the
// subnormals, 0 below), rcp14 (relative error 2^-14) and one Newton step (2^-28) for 1 / (1 + e), and
// counts as popcounts of compare masks. Every multiply-add counts: the loop is bound by the two FMA pipes.

// exp(-a) for a >= 0 (NaN stays NaN) as 2^(k/16) exp(r), k = round(-16 a / ln2), r = -a - (k/16) ln2,
// |r| <= ln2/32: exp(r) is the degree-3 minimax polynomial (relative error 1.1e-9), 2^((k mod 16)/16) a
// table entry and 2^floor(k/16) a scalef. Adding 1.5 * 2^19 rounds -a / ln2 to a multiple of 1/16 and
// leaves k mod 16 in the low 4 bits, which permutexvar takes as the index. One ln2 constant (no hi/lo
// split) puts an error of (k/16) (ln2 - float(ln2)) in r, 1 ulp of e at |x| = 20 and 6 at |x| = 80: the
// gradients stay within 6.0 ulp of float64 over |x| < 104 (the AVX2 loop's: 6.3), and the split would
// cost 7% of the loop. a is clamped at 104, where exp is 0 in float, so that a = inf gives 0, not NaN.
FASTGAN_TARGET_AVX512 inline __m512 exp_neg_avx512(__m512 a) {
  static constexpr float kExpCoeffs[] = {0.9999999988536235f, 1.0000000025223257f, 0.5000195490493196f,
                                         0.16666275690434412f};
  alignas(64) static constexpr float kExp2Sixteenths[16] = {  // 2^(j/16)
      1.0f,          1.0442737341f, 1.0905077457f, 1.1387885809f, 1.1892070770f, 1.2418577671f,
      1.2968395948f, 1.3542555571f, 1.4142135382f, 1.4768261909f, 1.5422108173f, 1.6104903221f,
      1.6817928553f, 1.7562521696f, 1.8340080976f, 1.9152065516f};
  const __m512 round_sixteenths = _mm512_set1_ps(786432.f);  // 1.5 * 2^19: float spacing 1/16
  a = _mm512_min_ps(_mm512_set1_ps(104.f), a);  // min returns its second operand, a, where a is NaN
  const __m512 t = _mm512_fmadd_ps(a, _mm512_set1_ps(-1.44269504088896341f), round_sixteenths);
  const __m512 k16 = _mm512_sub_ps(t, round_sixteenths);  // k / 16, exact
  const __m512 r = _mm512_fnmsub_ps(k16, _mm512_set1_ps(0.693147180559945f), a);
  __m512 p = _mm512_set1_ps(kExpCoeffs[3]);
  for (int i = 2; i >= 0; --i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpCoeffs[i]));
  const __m512 two_j16 = _mm512_permutexvar_ps(_mm512_castps_si512(t), _mm512_load_ps(kExp2Sixteenths));
  return _mm512_scalef_ps(_mm512_mul_ps(two_j16, p), k16);  // scalef scales by 2^floor(k / 16)
}

FASTGAN_TARGET_AVX512 inline __m512 log1p_unit_avx512(__m512 e) {
  __m512 q = _mm512_set1_ps(kLog1pCoeffs[kLog1pDegree]);
  for (int k = kLog1pDegree - 1; k >= 0; --k) q = _mm512_fmadd_ps(q, e, _mm512_set1_ps(kLog1pCoeffs[k]));
  return _mm512_mul_ps(q, e);
}

// Sum of the 16 lanes, in double.
FASTGAN_TARGET_AVX512 inline double add_lanes_avx512(__m512 v) {
  const __m512d low = _mm512_cvtps_pd(_mm512_castps512_ps256(v)), high = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
  return _mm512_reduce_add_pd(_mm512_add_pd(low, high));
}

template <bool kTargetReal>
FASTGAN_TARGET_AVX512 void logloss_range_avx512(const float* logits, float* grad, int64_t begin, int64_t end,
                                                float weight, Sums& sums) {
  constexpr int64_t kLanes = 16;
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.f);
  const __m512 w = _mm512_set1_ps(kTargetReal ? -weight : weight);  // grad = w g
  int64_t i = begin;
  while (end - i >= kLanes) {
    const int64_t group_end = i + std::min<int64_t>(32 * kLanes, (end - i) / kLanes * kLanes);
    __m512 loss = zero, prob = zero;
    int64_t correct = 0, nan = 0;
    for (; i < group_end; i += kLanes) {
      const __m512 x = _mm512_loadu_ps(logits + i);
      const __m512 a = _mm512_abs_ps(x);
      const __m512 e = exp_neg_avx512(a);
      const __mmask16 positive = _mm512_cmp_ps_mask(x, zero, _CMP_GE_OQ);
      const __m512 d = _mm512_add_ps(one, e), r = _mm512_rcp14_ps(d);
      const __m512 big = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.f)));  // sigmoid(|x|)
      const __m512 small = _mm512_mul_ps(e, big);                                         // sigmoid(-|x|)
      const __m512 p = _mm512_mask_blend_ps(positive, small, big);                        // sigmoid(x)
      // softplus(sign x) = log1p(e) + (|x| where sign x > 0); d/dx = -sigmoid(-x) (real) or sigmoid(x) (fake)
      loss = _mm512_add_ps(loss, log1p_unit_avx512(e));
      loss = _mm512_mask_add_ps(loss, kTargetReal ? __mmask16(~positive) : positive, loss, a);
      const __m512 g = kTargetReal ? _mm512_mask_blend_ps(positive, big, small) : p;  // sigmoid(-x), sigmoid(x)
      if (grad) _mm512_storeu_ps(grad + i, _mm512_mul_ps(w, g));
      prob = _mm512_add_ps(prob, p);
      correct += __builtin_popcount(_mm512_cmp_ps_mask(x, zero, kTargetReal ? _CMP_GT_OQ : _CMP_LT_OQ));
      nan += __builtin_popcount(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q));
    }
    sums[kStatLoss] += static_cast<double>(weight) * add_lanes_avx512(loss);
    sums[kTargetReal ? kStatProbReal : kStatProbFake] += add_lanes_avx512(prob);
    sums[kStatCorrect] += correct;
    sums[kStatNan] += nan;
  }
  add_tail(logits, grad, i, end, kTargetReal, weight, sums);
}
#endif

// logloss_range, on AVX-512 lanes where the logits are float32, this CPU has them and the caller allows it.
template <typename scalar_t>
void logloss_range_dispatch(const scalar_t* logits, scalar_t* grad, int64_t begin, int64_t end, bool target_real,
                            scalar_t weight, Sums& sums, bool use_avx512) {
#ifdef FASTGAN_AVX512_DISPATCH
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (use_avx512) {
      return target_real ? logloss_range_avx512<true>(logits, grad, begin, end, weight, sums)
                         : logloss_range_avx512<false>(logits, grad, begin, end, weight, sums);
    }
  }
#endif
  logloss_range(logits, grad, begin, end, target_real, weight, sums);
}

// Final statistics from the sums: means of D over each side, accuracy over both, NaN count.
at::Tensor finish_stats(const Sums& s, int64_t n_real, int64_t n_fake) {
  at::Tensor stats = at::empty({4}, at::TensorOptions().dtype(at::kFloat));
  float* out = stats.data_ptr<float>();
  out[0] = n_real ? s[kStatProbReal] / n_real : 0.f;
  out[1] = n_fake ? s[kStatProbFake] / n_fake : 0.f;
  out[2] = (n_real + n_fake) ? s[kStatCorrect] / (n_real + n_fake) : 0.f;
  out[3] = s[kStatNan];
  return stats;
}

Sums add_chunks(const std::vector<Sums>& chunks) {
  Sums total{};
  for (const Sums& c : chunks)
    for (int k = 0; k < kNumStats; ++k) total[k] += c[k];
  return total;
}

}  // namespace

std::vector<at::Tensor> gan_logloss_cpu(const at::Tensor& real_in, const at::Tensor& fake_in, double real_weight,
                                        double fake_weight, bool compute_grad, bool allow_avx512) {
  check_cpu_input(real_in, "real", 1, real_in);
  check_cpu_input(fake_in, "fake", 1, real_in);
  at::Tensor real = real_in.contiguous(), fake = fake_in.contiguous();
  const int64_t n_real = real.numel(), n_fake = fake.numel();
  at::Tensor grad_real = compute_grad ? at::empty_like(real) : at::empty({0}, real.options());
  at::Tensor grad_fake = compute_grad ? at::empty_like(fake) : at::empty({0}, fake.options());
  at::Tensor loss = at::empty({}, real.options());

  // Chunks [0, real_chunks) cover real, the rest cover fake.
  const int64_t real_chunks = (n_real + kChunk - 1) / kChunk, fake_chunks = (n_fake + kChunk - 1) / kChunk;
  std::vector<Sums> chunks(real_chunks + fake_chunks, Sums{});
  const bool use_avx512 = allow_avx512 && has_avx512();
  AT_DISPATCH_FLOATING_TYPES(real.scalar_type(), "gan_logloss_cpu", [&] {
    const scalar_t* r = real.data_ptr<scalar_t>();
    const scalar_t* f = fake.data_ptr<scalar_t>();
    scalar_t* gr = compute_grad ? grad_real.data_ptr<scalar_t>() : nullptr;
    scalar_t* gf = compute_grad ? grad_fake.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, real_chunks + fake_chunks, kParallelChunks, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const bool is_real = c < real_chunks;
        const int64_t begin = (is_real ? c : c - real_chunks) * kChunk;
        const int64_t n = is_real ? n_real : n_fake;
        logloss_range_dispatch<scalar_t>(is_real ? r : f, is_real ? gr : gf, begin, std::min(begin + kChunk, n),
                                         is_real, static_cast<scalar_t>(is_real ? real_weight : fake_weight),
                                         chunks[c], use_avx512);
      }
    });
  });
  const Sums total = add_chunks(chunks);
  loss.fill_(total[kStatLoss]);
  return {loss, grad_real, grad_fake, finish_stats(total, n_real, n_fake)};
}

std::vector<at::Tensor> gan_logloss_linear_cpu(const at::Tensor& h_real_in, const at::Tensor& h_fake_in,
                                               const at::Tensor& weight_in, const at::Tensor& bias_in,
                                               double real_weight, double fake_weight, bool compute_grad) {
  check_linear_loss_args(check_cpu_input, h_real_in, h_fake_in, weight_in, bias_in);
  const int64_t H = weight_in.size(0);
  at::Tensor h_real = h_real_in.contiguous(), h_fake = h_fake_in.contiguous();
  at::Tensor weight = weight_in.contiguous(), bias = bias_in.contiguous();
  const int64_t n_real = h_real.size(0), n_fake = h_fake.size(0);
  auto grad_like = [&](const at::Tensor& t) { return compute_grad ? at::empty_like(t) : at::empty({0}, t.options()); };
  at::Tensor grad_h_real = grad_like(h_real), grad_h_fake = grad_like(h_fake);
  at::Tensor grad_weight = grad_like(weight), grad_bias = grad_like(bias);
  at::Tensor loss = at::empty({}, weight.options());

  // Rows are cut into at most 64 fixed chunks (deterministic sums); each keeps its own dW partial in
  // double, H values per chunk, added in chunk order at the end. Chunks of at least kChunk values keep
  // the paper's 200 x 240 on the calling thread.
  const int64_t rows = n_real + n_fake;
  const int64_t chunk_rows = std::max<int64_t>(kChunk / std::max<int64_t>(H, 1) + 1, (rows + 63) / 64);
  const int64_t n_chunks = (rows + chunk_rows - 1) / chunk_rows;
  std::vector<Sums> chunks(n_chunks, Sums{});
  std::vector<double> dw_partial(compute_grad ? n_chunks * H : 0, 0.0);
  std::vector<double> db_partial(n_chunks, 0.0);
  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "gan_logloss_linear_cpu", [&] {
    const scalar_t* w = weight.data_ptr<scalar_t>();
    const scalar_t b = bias.data_ptr<scalar_t>()[0];
    at::parallel_for(0, n_chunks, kParallelChunks, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        double* dw = compute_grad ? &dw_partial[c * H] : nullptr;
        for (int64_t row = c * chunk_rows; row < std::min(rows, (c + 1) * chunk_rows); ++row) {
          const bool is_real = row < n_real;
          const int64_t i = is_real ? row : row - n_real;
          const scalar_t* h = (is_real ? h_real : h_fake).data_ptr<scalar_t>() + i * H;
          scalar_t logit = b;
          for (int64_t k = 0; k < H; ++k) logit += h[k] * w[k];
          LogLossTerm<scalar_t> t = logloss_term<scalar_t>(
              logit, is_real, static_cast<scalar_t>(is_real ? real_weight : fake_weight));
          accumulate(chunks[c], t, is_real);
          if (!compute_grad) continue;
          // d loss / d h = g w, d loss / d w = sum_rows g h, d loss / d b = sum_rows g, with g = d loss / d logit.
          scalar_t* gh = (is_real ? grad_h_real : grad_h_fake).data_ptr<scalar_t>() + i * H;
          for (int64_t k = 0; k < H; ++k) {
            gh[k] = t.grad * w[k];
            dw[k] += static_cast<double>(t.grad) * h[k];
          }
          db_partial[c] += t.grad;
        }
      }
    });
    if (compute_grad) {
      scalar_t* gw = grad_weight.data_ptr<scalar_t>();
      double db = 0;
      for (int64_t k = 0; k < H; ++k) {
        double acc = 0;
        for (int64_t c = 0; c < n_chunks; ++c) acc += dw_partial[c * H + k];
        gw[k] = acc;
      }
      for (int64_t c = 0; c < n_chunks; ++c) db += db_partial[c];
      grad_bias.data_ptr<scalar_t>()[0] = db;
    }
  });
  const Sums total = add_chunks(chunks);
  loss.fill_(total[kStatLoss]);
  return {loss, grad_h_real, grad_h_fake, grad_weight, grad_bias, finish_stats(total, n_real, n_fake)};
}

}  // namespace fastgan
