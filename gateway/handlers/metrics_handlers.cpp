#include "gateway/handlers/metrics_handlers.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>

#include "common/clock.hpp"
#include "gateway/handlers/http_auth.hpp"
#include "metrics/updates.hpp"
#include "xapid/api/rbac.hpp"

namespace xapid::gateway {
namespace {

// A whole number of a query parameter; nullopt when it is not one.
std::optional<std::int64_t> whole_number(const std::string& s) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

bool truthy(const std::map<std::string, std::string>& q, const char* name) {
  auto it = q.find(name);
  return it != q.end() && (it->second == "true" || it->second.empty() || it->second == "1");
}

// JSON when the client's Accept header names application/json with a q-value above 0 and not
// below text/xml's (xapi's client_prefers_json: the header first, JSON on a tie); XML when it
// names only text/xml so; else whether the query says json. Wildcards choose neither: curl's
// "*/*" keeps the query's choice (xapi's negotiation would answer JSON to it).
bool prefers_json(http_stream& io, const std::map<std::string, std::string>& q) {
  const std::string accept = io.header("Accept");
  double json = 0, xml = 0;
  std::size_t at = 0;
  while (at <= accept.size() && accept.size() <= 4096) {
    const std::size_t comma = std::min(accept.find(',', at), accept.size());
    std::string_view item(accept.data() + at, comma - at);
    at = comma + 1;
    const std::size_t semi = std::min(item.find(';'), item.size());
    std::string type(item.substr(0, semi));
    std::erase_if(type, [](char c) { return c == ' ' || c == '\t'; });
    for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    double weight = 1;
    for (std::string_view params = item.substr(semi); !params.empty();) {
      params.remove_prefix(1);  // the ';'
      const std::size_t next = std::min(params.find(';'), params.size());
      std::string param(params.substr(0, next));
      params.remove_prefix(next);
      std::erase_if(param, [](char c) { return c == ' ' || c == '\t'; });
      if (param.size() > 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') weight = std::atof(param.c_str() + 2);
    }
    if (!(weight >= 0 && weight <= 1)) weight = 0;
    if (type == "application/json") json = std::max(json, weight);
    else if (type == "text/xml") xml = std::max(xml, weight);
  }
  if (json > 0 && json >= xml) return true;
  if (xml > 0) return false;
  return q.count("json") > 0;
}

void send(http_stream& io, const std::string& content_type, const std::string& body) {
  if (io.send_head(200, content_type)) io.write(body.data(), body.size());
}

void bad_request(http_stream& io, const std::string& why) {
  answer_error(io, 400, api::errors::INVALID_VALUE("query", why));
}

// Who may read performance data: read-only and up (xapi's http/get_rrd* permissions).
std::optional<caller> reader(metrics_context& ctx, http_stream& io, const std::map<std::string, std::string>& q) {
  auto who = authorize(ctx.sessions, ctx.logins, io, q);
  if (!who) {
    answer_error(io, 401, who.error());
    return std::nullopt;
  }
  if (!who->superuser && who->role > api::least_role(*api::find_method("host.get_data_sources"))) {
    answer_error(io, 403, api::errors::RBAC_PERMISSION_DENIED("http/get_rrd_updates", "No permission in user session"));
    return std::nullopt;
  }
  return *who;
}

void rrd_updates(metrics_context& ctx, http_stream& io) {
  const auto pairs = query_pairs(io.target());
  const auto q = query_of(io.target());
  if (!reader(ctx, io, q)) return;
  metrics::updates_query uq;
  auto start = q.count("start") ? whole_number(q.at("start")) : std::nullopt;
  if (!start) return bad_request(io, "start must be given, in seconds since the epoch (or negative: before now)");
  uq.start = *start;
  if (q.count("interval")) {
    auto interval = whole_number(q.at("interval"));
    if (!interval || *interval < 0) return bad_request(io, "interval must be a number of seconds, 0 or more");
    uq.interval = *interval;
  }
  if (q.count("cf")) {
    uq.cf = metrics::consolidation_of(q.at("cf"));
    if (!uq.cf) return bad_request(io, "cf must be AVERAGE, MIN or MAX (or ave, min, max)");
  }
  uq.json = prefers_json(io, q);
  metrics::archive_selection which;
  // (host=true is xapi's spelling; its absence leaves the host out.)
  which.host = truthy(q, "host");
  for (const auto& [k, v] : pairs) {
    if (k != "vm_uuid" && k != "sr_uuid") continue;
    if (k == "sr_uuid" && v == "all") {  // perfmon's way of asking for every SR kept here
      which.all_srs = true;
      continue;
    }
    if (!is_uuid(v)) return bad_request(io, k + " is not a uuid");
    (k == "vm_uuid" ? which.vms : which.srs).push_back(v);
  }
  if (which.vms.size() + which.srs.size() > 10000) return bad_request(io, "more than 10,000 vm_uuid and sr_uuid");
  // Named objects with no archive here are left out, as xapi's filter does.
  std::string body;
  result<void, std::string> written = ok_v;
  ctx.collector.with_all(which, [&](const auto& archives) { written = metrics::write_updates(archives, uq, body); });
  if (!written) return bad_request(io, written.error());
  send(io, uq.json ? "application/json" : "text/xml", body);
}

// /host_rrd, /vm_rrd?uuid= and /sr_rrd?uuid=: rrdtool's dump of one archive.
void rrd_dump(metrics_context& ctx, http_stream& io, metrics::archive_kind kind) {
  const auto q = query_of(io.target());
  if (!reader(ctx, io, q)) return;
  std::string uuid;
  const bool sr = kind == metrics::archive_kind::sr;
  if (kind != metrics::archive_kind::host) {
    auto it = q.find("uuid");
    if (it == q.end() || !is_uuid(it->second)) return bad_request(io, sr ? "uuid must be given, an SR's uuid" : "uuid must be given, a VM's uuid");
    uuid = it->second;
  }
  const bool json = prefers_json(io, q);
  std::string body;
  if (!ctx.collector.with_rrd(uuid, [&](const metrics::rrd& r) { json ? r.dump_json(body) : r.dump_xml(body); }, kind))
    return answer_error(io, 404, api::errors::UUID_INVALID(sr ? "SR" : "VM", uuid));
  send(io, json ? "application/json" : "text/xml", body);
}

}  // namespace

http_server::handler open_metrics_handler(metrics_context& ctx) {
  struct cache {
    std::mutex mu;
    std::chrono::steady_clock::time_point made{};
    std::string text;
  };
  auto kept = std::make_shared<cache>();
  return [&ctx, kept](http_request req, http_server::responder respond) {
    if (req.method != "GET" || req.target.substr(0, req.target.find('?')) != "/metrics")
      return respond({404, "text/plain", "only GET /metrics is served here\n"});
    std::string text;
    {
      std::lock_guard lock(kept->mu);
      const auto now = monotonic_now();
      if (kept->text.empty() || now - kept->made >= std::chrono::seconds(1)) {
        kept->text = prometheus_text(ctx);
        kept->made = now;
      }
      text = kept->text;
    }
    respond({200, "text/plain; version=0.0.4; charset=utf-8", std::move(text)});
  };
}

void register_metrics_handlers(http_server& server, metrics_context& ctx) {
  server.add_stream_route("GET", "/rrd_updates", [&ctx](http_stream& io) { rrd_updates(ctx, io); });
  server.add_stream_route("GET", "/host_rrd", [&ctx](http_stream& io) { rrd_dump(ctx, io, metrics::archive_kind::host); });
  server.add_stream_route("GET", "/vm_rrd", [&ctx](http_stream& io) { rrd_dump(ctx, io, metrics::archive_kind::vm); });
  server.add_stream_route("GET", "/sr_rrd", [&ctx](http_stream& io) { rrd_dump(ctx, io, metrics::archive_kind::sr); });
  server.add_stream_route("GET", "/metrics", [&ctx](http_stream& io) {
    const auto q = query_of(io.target());
    if (!reader(ctx, io, q)) return;
    send(io, "text/plain; version=0.0.4; charset=utf-8", prometheus_text(ctx));
  });
}

}  // namespace xapid::gateway
