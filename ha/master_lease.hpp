// The master lease (block 1 of the statefile): who may renew or take it, from what one host has
// read there — pure over that host's monotonic clock, so the daemon's renewer and the whole-pool
// simulator run the same rule.
//
// Every host watches the block all along (a survivor that finds itself alone need not start
// counting then). Only a host *entitled* to it — the Raft leader, or a voter with no leader whose
// every other voter it judges dead — renews it while it is its own (same owner and incarnation),
// or takes it when it was never written, says its holder fenced, or has stood still for T on
// this host's clock (a holder that stopped renewing has fenced itself by then: fence_after < T)
// as its own reads show, each credited with at most T/5 since the one before (a jump of this
// host's clock, or a read stalled, is not the holder's silence).
// A torn or unreadable block is not free: it may be a holder's renewal in progress.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ha/liveness_judge.hpp"
#include "ha/statefile.hpp"

namespace xapid::ha {

class master_lease_watch {
 public:
  // The block (its raw bytes) as read by a read issued at `issued` and answered at `answered`:
  // standing still is credited up to its issue, and a change counts from its answer (the holder
  // may have written just before it).
  void read(const std::string& block, const ha_timing& timing, ha_time issued, ha_time answered);
  // Whether this host, entitled or not, may write the lease now (see above).
  bool may_take(bool entitled, const std::string& self, std::uint64_t incarnation, const ha_timing& timing) const;
  // The lease this host writes when it may: the counter after the one it read.
  lease next(const std::string& self, std::uint64_t incarnation, std::int64_t wall_ms) const;

 private:
  std::optional<lease> held_;  // decoded (empty: never written, torn or foreign)
  bool blank_ = false;         // never written: all zeros
  bool read_ = false;
  lease seen_;                 // what changed last
  ha_time last_read_{};
  std::chrono::nanoseconds still_{0};  // standing still since, as credited to the reads
};

}  // namespace xapid::ha
