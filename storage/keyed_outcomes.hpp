// Outcomes of the proposals that carry an idempotency key: a member's writes forwarded to the
// master. When the member cannot tell whether its write was applied (the master died before it
// answered), it sends the same bytes again to the next master; a proposal whose key was applied
// already is not applied again, it answers the outcome the first one had. So a write is applied at
// most once whatever the failover, and its writer gets its true outcome instead of "may or may not".
//
// Part of the replicated state: every member decides alike, so the keys are kept the same way
// everywhere — the last `kept` keyed proposals in the order they were applied (stored beside the
// rows under "k" + their place, carried in checkpoints, loaded at open).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.hpp"
#include "xapid/api/errors.hpp"
#include "proto/wire/value.hpp"

namespace xapid::storage {

using generation = std::uint64_t;
using proposal_outcome = result<generation, api::api_error>;

class keyed_outcomes {
 public:
  static constexpr std::size_t max_key_bytes = 64;

  explicit keyed_outcomes(std::size_t kept) : kept_(kept ? kept : 1) {}

  // The outcome of the proposal that carried `key`, if it is still kept.
  const proposal_outcome* find(std::string_view key) const;

  // The place the next key takes; and the place the `nth` key added from now (0: the next)
  // pushes out, when `kept` are held by then.
  std::uint64_t next_place() const noexcept { return first_ + order_.size(); }
  std::optional<std::uint64_t> pushed_out_by(std::size_t nth) const noexcept {
    return order_.size() + nth >= kept_ ? std::optional<std::uint64_t>(first_ + (order_.size() + nth - kept_)) : std::nullopt;
  }
  std::size_t size() const noexcept { return order_.size(); }
  // Keeps `key`'s outcome at next_place(), forgetting the oldest beyond `kept`.
  void add(std::string key, proposal_outcome outcome);

  // One kept key as stored: [key, generation (0: failed), the error's description].
  static std::string encode(std::string_view key, const proposal_outcome& outcome);
  // Takes a stored key back, at `place`; places come in order, each following the last.
  result<void, std::string> load(std::uint64_t place, std::string_view stored);

  // In a checkpoint: [first place, [[key, generation, [description...]]...]], in place order;
  // read back into an empty instance.
  wire::value to_value() const;
  result<void, std::string> from_value(const wire::value& v);
  // Each kept key as from_value would store it: (place, encode(...)).
  template <class F>
  void for_each_stored(F&& f) const {
    for (std::size_t i = 0; i < order_.size(); ++i) f(first_ + i, encode(order_[i], outcomes_.at(order_[i])));
  }

  void clear();

 private:
  std::size_t kept_;
  std::uint64_t first_ = 0;         // the place of order_.front()
  std::deque<std::string> order_;   // keys in the order they were applied
  std::unordered_map<std::string, proposal_outcome> outcomes_;
};

}  // namespace xapid::storage
