// The data-source RPCs of host and VM (get_data_sources, query_data_source,
// record_data_source, forget_data_source_archives) and host.backup_rrds, over this host's
// metrics::collector. A VM's sources are those of its archive here (running here, or archived
// here before); a source that does not exist is INVALID_VALUE(data_source, name).
#pragma once

#include "gateway/rpc/dispatch.hpp"
#include "metrics/collector.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

void register_metrics_rpcs(dispatcher& d, storage::database& db, metrics::collector& collector, const std::string& this_host);

}  // namespace xapid::gateway
