// The HTTP handlers of performance data (seed 003, 5.2), each for read-only sessions and up
// (session_id or HTTP basic credentials): GET /rrd_updates?start=&interval=&cf=&host=&vm_uuid=&json
// (xapi's xport XML or JSON), /host_rrd and /vm_rrd?uuid= (rrdtool's dump, XML or with json its
// JSON form), and GET /metrics in Prometheus' text format (beyond xapi): every data source as a
// gauge labelled by its object, and xapid's own counts.
#pragma once

#include <string>

#include "gateway/api/event_rpcs.hpp"
#include "gateway/auth/logins.hpp"
#include "gateway/auth/sessions.hpp"
#include "gateway/http/http_server.hpp"
#include "metrics/collector.hpp"
#include "storage/database.hpp"
#include "storage/raft_sequencer.hpp"

namespace xapid::gateway {

struct metrics_context {
  storage::database& db;
  session_manager& sessions;
  login_guard& logins;
  metrics::collector& collector;
  // xapid's own, when the host has them: its calls, its waiting event calls, its pool log.
  const dispatcher* calls = nullptr;
  event_rpcs* events = nullptr;
  storage::raft_sequencer* pool_log = nullptr;
};

void register_metrics_handlers(http_server& server, metrics_context& ctx);
// The handler of --metrics-listen's listener, for a scraper: GET /metrics with no credentials
// asked (what the authenticated one tells), anything else 404. Answered from the serving
// threads, not a stream's (a few clients that never read cannot hold the stream slots), with
// the text made at most once a second whoever asks.
http_server::handler open_metrics_handler(metrics_context& ctx);
// The Prometheus text of this host now.
std::string prometheus_text(metrics_context& ctx);

}  // namespace xapid::gateway
