// The legacy metrics objects (seed 003, "Getting XenServer Performance Statistics"): zero by
// default; when a host's other_config:rrd_update_interval is "1" (every 5 s) or "2" (every
// minute), that host copies the newest values of its archives into the records of what runs
// there: VM_metrics.VCPUs_utilisation, its host_metrics.memory_free and memory_total, and
// VIF_metrics / VBD_metrics io_read_kbs and io_write_kbs (KiB/s; a plugged device without one
// is given one), all in one commit. (xapi no longer has VIF_metrics and VBD_metrics; the seed's
// datamodel does, and old monitoring clients read them.)
#pragma once

#include <cstdint>
#include <string>

#include "metrics/collector.hpp"
#include "storage/database.hpp"

namespace xapid::metrics {

// The polling interval a host's other_config asks for: 5, 60, or 0 (never: the default).
std::int64_t legacy_interval_seconds(const storage::state& s, const std::string& host_ref);

// Copies the newest values of `host_ref`'s archives and of the VMs running there into the
// legacy records (wall time `now`, seconds). Failures are logged: the next run tries again.
void write_legacy_metrics(storage::database& db, const std::string& host_ref, collector& c, std::int64_t now);

// VIF_metrics and VBD_metrics no VIF or VBD names any more (their device was destroyed): the
// master's clean-up, in one commit. Cheap when there are none.
void drop_orphaned_device_metrics(storage::database& db);

}  // namespace xapid::metrics
