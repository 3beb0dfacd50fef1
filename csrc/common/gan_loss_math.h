// Per-logit math of the GAN log-loss, shared by csrc/cpu/gan_loss_cpu.cpp and csrc/cuda/gan_loss_cuda.cu.
//
// A logit l with target t (1 = "real", 0 = "fake") costs the binary log-loss
//   loss(l, t) = -t log sigmoid(l) - (1 - t) log(1 - sigmoid(l)) = softplus(l) - t l = softplus(t ? -l : l)
//   d loss / d l = sigmoid(l) - t  (= -sigmoid(-l) for t = 1, written so to keep its relative precision
//                                   when sigmoid(l) rounds to 1)
// softplus(x) = max(x, 0) + log1p(exp(-|x|)) never overflows: at l = +-1e4 it is exact (1e4 or 0),
// where log(sigmoid(l)) and log1p(exp(l)) give inf loss and NaN gradients.
#pragma once
#include "common/hostdevice.h"

namespace fastgan {

template <typename acc_t>
FASTGAN_HD acc_t softplus(acc_t x) {
  return (x > acc_t(0) ? x : acc_t(0)) + fg_log1p(fg_exp(-fg_abs(x)));
}

// 1 / (1 + exp(-x)) without overflow: exp is only taken of -|x|.
template <typename acc_t>
FASTGAN_HD acc_t sigmoid(acc_t x) {
  acc_t e = fg_exp(-fg_abs(x));
  return x >= acc_t(0) ? acc_t(1) / (acc_t(1) + e) : e / (acc_t(1) + e);
}

// Everything the loss kernels take from one logit: its weighted loss and gradient, D's probability
// that it is real, whether D classifies it right (l > 0 for real, l < 0 for fake), and whether it is NaN.
template <typename acc_t>
struct LogLossTerm {
  acc_t loss;
  acc_t grad;
  acc_t prob;
  acc_t correct;
  acc_t nan;
};

template <typename acc_t>
FASTGAN_HD LogLossTerm<acc_t> logloss_term(acc_t logit, bool target_real, acc_t weight) {
  LogLossTerm<acc_t> r;
  r.prob = sigmoid(logit);
  r.loss = weight * softplus(target_real ? -logit : logit);
  r.grad = target_real ? -weight * sigmoid(-logit) : weight * r.prob;
  r.correct = (target_real ? logit > acc_t(0) : logit < acc_t(0)) ? acc_t(1) : acc_t(0);
  r.nan = logit != logit ? acc_t(1) : acc_t(0);
  return r;
}

// Slots of the per-call statistics vector (sums; the host divides by the counts).
enum LogLossStat { kStatLoss = 0, kStatProbReal, kStatProbFake, kStatCorrect, kStatNan, kNumStats };

}  // namespace fastgan
