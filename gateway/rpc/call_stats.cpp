#include "gateway/rpc/call_stats.hpp"

#include "xapid/api/catalog.hpp"

namespace xapid::gateway {

namespace {
constexpr std::string_view async_prefix = "Async.";
constexpr std::size_t max_failure_kinds = 10000;  // (method, code) pairs kept apart; beyond, "other"
}  // namespace

struct call_stats::slot {
  std::atomic<std::uint64_t> successes{0};
  latency_histogram latency;
};

call_stats::call_stats() : methods_(api::all_methods().size()) {
  slots_ = std::make_unique<slot[]>(2 * methods_ + 2);
}

call_stats::~call_stats() = default;

std::size_t call_stats::slot_of(std::string_view wire_name) const noexcept {
  const bool async = wire_name.starts_with(async_prefix);
  if (async) wire_name.remove_prefix(async_prefix.size());
  const api::method_desc* m = api::find_method(wire_name);
  if (!m) return 2 * methods_;
  const auto index = static_cast<std::size_t>(m - api::all_methods().data());
  return async ? methods_ + index : index;
}

std::size_t call_stats::counted_in(std::size_t slot, bool had_session) const noexcept {
  if (had_session || slot >= 2 * methods_) return slot;
  return api::all_methods()[slot % methods_].takes_session ? 2 * methods_ + 1 : slot;
}

void call_stats::record(std::size_t at, const wire::response& r, std::chrono::nanoseconds took) noexcept {
  slot& s = slots_[at];
  s.latency.record(took);
  if (r.success) {
    s.successes.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const std::string code = r.error_description.empty() ? std::string("INTERNAL_ERROR") : r.error_description.front();
  try {
    std::lock_guard lock(failures_mu_);
    auto key = std::pair{at, code};
    if (failures_.size() >= max_failure_kinds && !failures_.count(key)) key.second = "other";
    ++failures_[key];
  } catch (...) {
    // (Out of memory: the count is lost, the call's answer is not.)
  }
}

std::vector<call_stats::method_reading> call_stats::read() const {
  std::vector<method_reading> out;
  const auto methods = api::all_methods();
  auto name_of = [&](std::size_t at) {
    if (at == 2 * methods_) return std::string("unknown");
    if (at == 2 * methods_ + 1) return std::string("(unauthenticated)");
    return (at >= methods_ ? std::string(async_prefix) : std::string()) + std::string(methods[at % methods_].wire_name);
  };
  std::map<std::size_t, std::size_t> row_of;  // slot -> its place in `out`
  for (std::size_t at = 0; at <= 2 * methods_ + 1; ++at) {
    auto latency = slots_[at].latency.read();
    if (latency.count == 0) continue;
    row_of[at] = out.size();
    out.push_back({name_of(at), slots_[at].successes.load(std::memory_order_relaxed), {}, latency});
  }
  std::lock_guard lock(failures_mu_);
  for (const auto& [key, count] : failures_)
    if (auto it = row_of.find(key.first); it != row_of.end()) out[it->second].failures.emplace_back(key.second, count);
  return out;
}

}  // namespace xapid::gateway
