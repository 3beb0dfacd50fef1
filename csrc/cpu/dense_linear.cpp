// oneDNN is reached through torch's own registered op, mkldnn::_linear_pointwise (the one Inductor's CPU
// lowering emits), so the extension needs no oneDNN headers and uses the oneDNN that torch ships.
#include "cpu/dense_linear.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include <atomic>

namespace fastgan {
namespace {

using LinearPointwise = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                   c10::string_view, c10::List<std::optional<at::Scalar>>,
                                   std::optional<c10::string_view>);

// Looked up once; empty where torch has no oneDNN (the op is then not registered).
const std::optional<c10::TypedOperatorHandle<LinearPointwise>>& onednn_linear() {
  static const auto handle = []() -> std::optional<c10::TypedOperatorHandle<LinearPointwise>> {
    if (!at::hasMKLDNN()) return std::nullopt;
    const auto op = c10::Dispatcher::singleton().findSchema({"mkldnn::_linear_pointwise", ""});
    if (!op) return std::nullopt;
    return op->typed<LinearPointwise>();
  }();
  return handle;
}

std::atomic<bool> onednn_enabled{true};

}  // namespace

bool dense_linear_uses_onednn() { return onednn_enabled.load(std::memory_order_relaxed) && onednn_linear().has_value(); }

void set_dense_linear_onednn(bool enabled) { onednn_enabled.store(enabled, std::memory_order_relaxed); }

at::Tensor dense_linear(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.dim() == 2 && weight.dim() == 2 && x.size(1) == weight.size(1),
              "dense_linear takes x [M, K] and weight [N, K], got shapes ", x.sizes(), " and ", weight.sizes());
  TORCH_CHECK(!bias || (bias->dim() == 1 && bias->size(0) == weight.size(0)), "bias must be [", weight.size(0),
              "], got shape ", bias ? bias->sizes() : at::IntArrayRef{});
  const auto& onednn = onednn_linear();
  if (onednn && onednn_enabled.load(std::memory_order_relaxed) && x.scalar_type() == at::kFloat && x.numel() > 0 &&
      weight.numel() > 0)
    return onednn->call(x, weight, bias, "none", c10::List<std::optional<at::Scalar>>(), std::nullopt);
  return bias ? at::addmm(*bias, x, weight.t()) : at::mm(x, weight.t());
}

}  // namespace fastgan
