#include <algorithm>
#include <cmath>
#include <map>

#include "gateway/handlers/metrics_handlers.hpp"

namespace xapid::gateway {
namespace {

using storage::schema;

// A label's value in the text format: backslash, quote and newline escaped; at most 256 bytes
// of it (a VM's name may be a megabyte), cut before a UTF-8 sequence that would not fit whole.
std::string label_value(const std::string& whole) {
  std::size_t n = std::min<std::size_t>(whole.size(), 256);
  while (n < whole.size() && n > 0 && (static_cast<unsigned char>(whole[n]) & 0xC0) == 0x80) --n;
  const std::string_view s(whole.data(), n);
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// A metric name from a data source's: [a-zA-Z0-9_] only.
std::string metric_name(const std::string& prefix, const std::string& source) {
  std::string out = prefix;
  for (char c : source) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

// A histogram's samples: cumulative buckets with `le`, then _sum and _count.
void add_histogram(std::string& samples, const std::string& name, const std::string& labels, const latency_histogram::reading& h) {
  std::uint64_t cumulative = 0;
  const std::string prefix = labels.empty() ? "" : labels + ",";
  for (std::size_t i = 0; i < h.buckets.size(); ++i) {
    cumulative += h.buckets[i];
    samples += name + "_bucket{" + prefix + "le=\"";
    if (i < latency_histogram::bounds.size()) metrics::append_float(samples, latency_histogram::bounds[i]);
    else samples += "+Inf";
    samples += "\"} " + std::to_string(cumulative) + "\n";
  }
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  samples += name + "_sum" + braces + " ";
  metrics::append_float(samples, h.sum_seconds);
  samples += "\n" + name + "_count" + braces + " " + std::to_string(h.count) + "\n";
}

}  // namespace

std::string prometheus_text(metrics_context& ctx) {
  auto snap = ctx.db.snapshot();
  // Each family's samples together, as the format wants them: name -> (type, help, samples).
  struct family {
    std::string type, help, samples;
  };
  std::map<std::string, family> families;
  auto family_of = [&](const std::string& name, const char* type, const std::string& help) -> std::string& {
    auto& f = families[name];
    if (f.help.empty()) f.help = help, f.type = type;
    return f.samples;
  };
  auto add_as = [&](const char* type, const std::string& name, const std::string& help, const std::string& labels, double v) {
    auto& samples = family_of(name, type, help);
    samples += labels.empty() ? name + " " : name + "{" + labels + "} ";
    metrics::append_float(samples, v);
    samples += '\n';
  };
  auto add = [&](const std::string& name, const std::string& help, const std::string& labels, double v) {
    add_as(name.ends_with("_total") ? "counter" : "gauge", name, help, labels, v);
  };
  const std::string host_uuid = ctx.collector.host_uuid();
  std::string host_label = "host_uuid=\"" + label_value(host_uuid) + "\"";
  if (auto ref = snap->ref_by_uuid(schema::get().class_of<api::host>(), host_uuid))
    host_label += ",name_label=\"" + label_value(snap->get<api::host>(*ref)->name_label) + "\"";
  metrics::archive_selection every;
  every.host = every.all_srs = true;
  // The newest values are copied under the collector's lock (which its sampling takes), and
  // the text is made after.
  struct newest {
    std::string prefix;
    std::vector<std::pair<std::string, double>> values;
  };
  std::vector<newest> all;
  ctx.collector.with_all(every, [&](const auto& archives) {
    all.reserve(archives.size());
    for (const auto& [prefix, r] : archives) {
      newest n{prefix, {}};
      n.values.reserve(r->sources().size());
      for (const auto& source : r->sources()) {
        const double v = r->latest(source).value_or(std::nan(""));
        if (!std::isnan(v)) n.values.emplace_back(source, v);
      }
      all.push_back(std::move(n));
    }
  });
  for (const auto& [prefix, values] : all) {
    const bool is_host = prefix.rfind("host:", 0) == 0, is_sr = prefix.rfind("sr:", 0) == 0;
    std::string labels = host_label;
    if (!is_host) {
      // "vm:<uuid>:" or "sr:<uuid>:"
      const std::string uuid = prefix.substr(3, prefix.size() - 4);
      labels = (is_sr ? "sr_uuid=\"" : "vm_uuid=\"") + label_value(uuid) + "\"," + host_label.substr(0, host_label.find(",name_label"));
      const std::string* name = nullptr;
      if (is_sr) {
        if (auto ref = snap->ref_by_uuid(schema::get().class_of<api::sr>(), uuid)) name = &snap->get<api::sr>(*ref)->name_label;
      } else if (auto ref = snap->ref_by_uuid(schema::get().class_of<api::vm>(), uuid)) {
        name = &snap->get<api::vm>(*ref)->name_label;
      }
      if (name) labels += ",name_label=\"" + label_value(*name) + "\"";
    }
    for (const auto& [source, v] : values) {
      const auto d = metrics::describe(source);
      add(metric_name(is_host ? "xapid_host_" : is_sr ? "xapid_sr_" : "xapid_vm_", source),
          d.description + (d.units.empty() ? "" : " (" + d.units + ")"), labels, v);
    }
  }
  // xapid's own: what its database holds of the objects that come and go.
  for (const char* cls : {"session", "task", "message", "VM"}) {
    const auto index = schema::get().class_index(cls);
    if (index)
      add("xapid_objects", "Objects of a class in the pool database", "class=\"" + std::string(cls) + "\"",
          static_cast<double>(snap->count(*index)));
  }
  add("xapid_database_generation", "The pool database's generation (commits applied)", "", static_cast<double>(snap->gen()));
  add("xapid_metrics_samples_total", "Samples of the data sources taken since start", "",
      static_cast<double>(ctx.collector.samples()));
  // Its calls: by RPC and result, and how long they took from arrival to answer.
  if (ctx.calls) {
    for (const auto& m : ctx.calls->stats().read()) {
      const std::string method = "method=\"" + label_value(m.method) + "\"";
      if (m.successes) add("xapid_calls_total", "Calls answered, by RPC and result (success or the error code)", method + ",result=\"success\"",
                           static_cast<double>(m.successes));
      for (const auto& [code, n] : m.failures)
        add("xapid_calls_total", "Calls answered, by RPC and result (success or the error code)",
            method + ",result=\"" + label_value(code) + "\"", static_cast<double>(n));
      add_histogram(family_of("xapid_call_duration_seconds", "histogram", "Time from a call's arrival to its answer"),
                    "xapid_call_duration_seconds", method, m.latency);
    }
  }
  // Its database's commits: the wait for each, and how many proposals share a batch.
  const auto commits = ctx.db.stats();
  add_histogram(family_of("xapid_commit_duration_seconds", "histogram", "Time from a commit's call to its durable outcome"),
                "xapid_commit_duration_seconds", "", commits.latency);
  add("xapid_commit_batches_total", "Batches of proposals applied (each one synced write)", "", static_cast<double>(commits.batches));
  add("xapid_commit_batched_proposals_total", "Proposals applied in those batches (their ratio: the mean batch size)", "",
      static_cast<double>(commits.proposals));
  if (ctx.events)
    add("xapid_event_waiters", "Calls waiting for events now (event.from, event.next)", "", static_cast<double>(ctx.events->waiting()));
  // The pool's log as this host sees it.
  if (ctx.pool_log) {
    const auto st = ctx.pool_log->status();
    using role = storage::raft_status::role_state;
    add("xapid_raft_term", "The pool log's current term", "", static_cast<double>(st.term));
    for (auto [r, name] : {std::pair{role::leader, "leader"}, {role::follower, "follower"}, {role::candidate, "candidate"},
                           {role::unavailable, "unavailable"}})
      add("xapid_raft_role", "This host's role in the pool's log (1: the one it has)", std::string("role=\"") + name + "\"",
          st.state == r ? 1 : 0);
    add("xapid_raft_last_index", "The last entry of this host's copy of the log", "", static_cast<double>(st.last_index));
    add("xapid_raft_applied_index", "The last entry of the log this host's database has applied", "",
        static_cast<double>(st.applied_log_index));
    add("xapid_raft_apply_lag_entries", "Entries this host holds but has not applied yet", "",
        static_cast<double>(st.last_index > st.last_applied ? st.last_index - st.last_applied : 0));
    add("xapid_raft_commit_index", "The last entry of the log known committed", "", static_cast<double>(st.commit_index));
    // On the master: how far behind each other member's copy of the log is.
    if (st.state == role::leader)
      for (const auto& m : st.configuration)
        if (m.member.id != 0 && m.member.address != st.leader.address)
          add("xapid_raft_replication_lag_entries", "On the master: entries a member's copy of the log lacks",
              "member_id=\"" + std::to_string(m.member.id) + "\",address=\"" + label_value(m.member.address) + "\"",
              static_cast<double>(st.last_index > m.match_index ? st.last_index - m.match_index : 0));
    for (const auto& m : st.configuration)
      add("xapid_raft_member", "The members of the pool's log and the role each has there (1)",
          "member_id=\"" + std::to_string(m.member.id) + "\",address=\"" + label_value(m.member.address) + "\",role=\"" +
              (m.role == storage::raft_role::voter ? "voter" : m.role == storage::raft_role::standby ? "standby" : "spare") + "\"",
          1);
    add("xapid_raft_voters", "Voting members of the pool's log", "",
        static_cast<double>(std::count_if(st.configuration.begin(), st.configuration.end(),
                                          [](const auto& m) { return m.role == storage::raft_role::voter; })));
  }
  std::string out;
  for (const auto& [name, f] : families) {
    out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + f.type + "\n";
    out += f.samples;
  }
  return out;
}

}  // namespace xapid::gateway
