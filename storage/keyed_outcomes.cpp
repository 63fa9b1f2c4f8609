#include "storage/keyed_outcomes.hpp"

#include <algorithm>

#include "proto/api/convert.hpp"
#include "proto/wire/binary.hpp"

namespace xapid::storage {
namespace {

// What is kept of a refusal: its code and at most 8 parameters of at most 256 bytes each, so that
// a key costs a bounded few bytes whatever error a precondition carried (its text is a member's).
constexpr std::size_t kept_params = 8, kept_param_bytes = 256;

wire::value item(std::string_view key, const proposal_outcome& outcome) {
  wire::array description;
  if (!outcome)
    for (auto& s : outcome.error().description()) {
      if (description.size() > kept_params) break;
      description.emplace_back(s.substr(0, kept_param_bytes));
    }
  return wire::value(wire::array{wire::value(std::string(key)), wire::value(static_cast<std::int64_t>(outcome ? *outcome : 0)),
                                 wire::value(std::move(description))});
}

result<std::pair<std::string, proposal_outcome>, std::string> read_item(const wire::value& v) {
  const wire::array* a = v.as_array();
  if (!a || a->size() != 3 || !(*a)[0].as_string() || !(*a)[1].as_int() || !(*a)[2].as_array())
    return fail(std::string("a kept key of the wrong shape"));
  const std::string& key = *(*a)[0].as_string();
  if (key.empty() || key.size() > keyed_outcomes::max_key_bytes) return fail(std::string("a kept key of the wrong length"));
  const auto gen = static_cast<generation>(*(*a)[1].as_int());
  if (gen != 0) return std::pair<std::string, proposal_outcome>(key, proposal_outcome(gen));
  std::vector<std::string> description;
  for (const auto& s : *(*a)[2].as_array()) {
    if (!s.as_string()) return fail(std::string("a kept key's error of the wrong shape"));
    description.push_back(*s.as_string());
  }
  return std::pair<std::string, proposal_outcome>(
      key, fail(api::error_from_description(description, api::errors::INTERNAL_ERROR("a change that failed before"))));
}

}  // namespace

const proposal_outcome* keyed_outcomes::find(std::string_view key) const {
  auto it = outcomes_.find(std::string(key));
  return it == outcomes_.end() ? nullptr : &it->second;
}

void keyed_outcomes::add(std::string key, proposal_outcome outcome) {
  if (!outcome) {  // kept as it is stored (item above)
    auto& params = outcome.error().params;
    if (params.size() > kept_params) params.resize(kept_params);
    for (auto& p : params) p.resize(std::min(p.size(), kept_param_bytes));
  }
  if (order_.size() >= kept_) {
    outcomes_.erase(order_.front());
    order_.pop_front();
    ++first_;
  }
  outcomes_.insert_or_assign(key, std::move(outcome));
  order_.push_back(std::move(key));
}

std::string keyed_outcomes::encode(std::string_view key, const proposal_outcome& outcome) {
  return wire::binary::encode(item(key, outcome));
}

result<void, std::string> keyed_outcomes::load(std::uint64_t place, std::string_view stored) {
  if (!order_.empty() && place != next_place()) return fail("kept key " + std::to_string(place) + " does not follow " + std::to_string(next_place() - 1));
  if (order_.empty()) first_ = place;
  auto v = wire::binary::decode(stored, wire::limits{});
  if (!v) return fail("a kept key cannot be read: " + v.error().message);
  auto it = read_item(*v);
  if (!it) return fail(it.error());
  add(std::move(it->first), std::move(it->second));
  return ok_v;
}

wire::value keyed_outcomes::to_value() const {
  wire::array items;
  items.reserve(order_.size());
  for (const auto& key : order_) items.push_back(item(key, outcomes_.at(key)));
  return wire::value(wire::array{wire::value(static_cast<std::int64_t>(first_)), wire::value(std::move(items))});
}

result<void, std::string> keyed_outcomes::from_value(const wire::value& v) {
  clear();
  const wire::array* a = v.as_array();
  if (!a || a->size() != 2 || !(*a)[0].as_int() || *(*a)[0].as_int() < 0 || !(*a)[1].as_array())
    return fail(std::string("the kept keys are of the wrong shape"));
  first_ = static_cast<std::uint64_t>(*(*a)[0].as_int());
  for (const auto& i : *(*a)[1].as_array()) {
    auto it = read_item(i);
    if (!it) return fail(it.error());
    add(std::move(it->first), std::move(it->second));
  }
  return ok_v;
}

void keyed_outcomes::clear() {
  first_ = 0;
  order_.clear();
  outcomes_.clear();
}

}  // namespace xapid::storage
