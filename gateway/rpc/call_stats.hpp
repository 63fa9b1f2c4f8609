// How many calls of each RPC this host answered, with what result, and how long they took (from
// the request's arrival to its answer), for GET /metrics. One slot per catalog method and one
// per its Async form, made up front: recording takes no lock for a success; a failure also
// counts its error code under a lock (failures are the rarer answer). Calls that needed a
// session and had none valid (or one whose role may not make them) share one slot,
// "(unauthenticated)", and names outside the
// catalog one, "unknown": whoever has no session cannot grow the answer of /metrics.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/latency_histogram.hpp"
#include "proto/wire/codec.hpp"

namespace xapid::gateway {

class call_stats {
 public:
  call_stats();
  ~call_stats();

  // The slot of a call's method ("VM.start", "Async.VM.start"); names outside the catalog share
  // one slot ("unknown").
  std::size_t slot_of(std::string_view wire_name) const noexcept;
  // Where a call of `slot` is counted once answered: its own slot, or the unauthenticated one
  // when its method takes a session and `had_session` is false.
  std::size_t counted_in(std::size_t slot, bool had_session) const noexcept;
  void record(std::size_t slot, const wire::response& r, std::chrono::nanoseconds took) noexcept;

  struct method_reading {
    std::string method;
    std::uint64_t successes = 0;
    std::vector<std::pair<std::string, std::uint64_t>> failures;  // by error code
    latency_histogram::reading latency;
  };
  // Every method called at least once.
  std::vector<method_reading> read() const;

 private:
  struct slot;
  std::unique_ptr<slot[]> slots_;
  std::size_t methods_;  // catalog methods; then as many Async forms; then "unknown", "(unauthenticated)"
  mutable std::mutex failures_mu_;
  std::map<std::pair<std::size_t, std::string>, std::uint64_t> failures_;
};

}  // namespace xapid::gateway
