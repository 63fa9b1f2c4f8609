#include "ha/master_lease.hpp"

namespace xapid::ha {

void master_lease_watch::read(const std::string& block, const ha_timing& timing, ha_time issued, ha_time answered) {
  held_ = decode_lease(block);
  blank_ = block.find_first_not_of('\0') == std::string::npos;
  const lease seen = held_.value_or(lease{});
  if (!read_ || seen.counter != seen_.counter || seen.incarnation != seen_.incarnation || seen.owner != seen_.owner) {
    still_ = {};
    seen_ = seen;
    read_ = true;
    last_read_ = std::max(last_read_, answered);
    return;
  }
  if (issued > last_read_) {
    still_ += std::min<std::chrono::nanoseconds>(issued - last_read_, timing.timeout / 5);
    last_read_ = issued;
  }
}

bool master_lease_watch::may_take(bool entitled, const std::string& self, std::uint64_t incarnation,
                                  const ha_timing& timing) const {
  if (!entitled || !read_) return false;
  const bool ours = held_ && held_->owner == self && held_->incarnation == incarnation;
  return ours || blank_ || (held_ && held_->fenced) || still_ >= timing.timeout;
}

lease master_lease_watch::next(const std::string& self, std::uint64_t incarnation, std::int64_t wall_ms) const {
  return lease{self, (held_ ? held_->counter : 0) + 1, incarnation, wall_ms, false, {}};
}

}  // namespace xapid::ha
