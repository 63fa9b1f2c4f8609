// /rrd_updates: the rows of many archives since a time, in rrdtool's xport XML or the JSON form
// xapi writes (every number a string), as xapi's Rrd_updates.export builds them: the archives
// whose step is at least `interval` and whose span holds `start` (else the coarsest), the
// legend "<CF>:<prefix><source>" ("AVERAGE:vm:<uuid>:cpu0"), rows newest first.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "metrics/rrd.hpp"

namespace xapid::metrics {

struct updates_query {
  std::int64_t start = 0;     // seconds; negative: that long before the last update
  std::int64_t interval = 0;  // the least step wanted, seconds
  std::optional<consolidation> cf;  // every one when not given
  bool json = false;
};

// Appends the answer to `out`; an error says why there is none (no archive with such a step).
result<void, std::string> write_updates(const std::vector<std::pair<std::string, const rrd*>>& archives,
                                        const updates_query& q, std::string& out);

}  // namespace xapid::metrics
