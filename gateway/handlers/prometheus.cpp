#include <cmath>
#include <map>

#include "gateway/handlers/metrics_handlers.hpp"

namespace xapid::gateway {
namespace {

using storage::schema;

// A label's value in the text format: backslash, quote and newline escaped.
std::string label_value(const std::string& s) {
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

}  // namespace

std::string prometheus_text(metrics_context& ctx) {
  auto snap = ctx.db.snapshot();
  // Each family's samples together, as the format wants them: name -> lines.
  std::map<std::string, std::pair<std::string, std::string>> families;  // name -> (help, samples)
  auto add = [&](const std::string& name, const std::string& help, const std::string& labels, double v) {
    auto& f = families[name];
    if (f.first.empty()) f.first = help;
    f.second += labels.empty() ? name + " " : name + "{" + labels + "} ";
    metrics::append_float(f.second, v);
    f.second += '\n';
  };
  const std::string host_uuid = ctx.collector.host_uuid();
  std::string host_label = "host_uuid=\"" + label_value(host_uuid) + "\"";
  if (auto ref = snap->ref_by_uuid(schema::get().class_of<api::host>(), host_uuid))
    host_label += ",name_label=\"" + label_value(snap->get<api::host>(*ref)->name_label) + "\"";
  metrics::archive_selection every;
  every.host = every.all_srs = true;
  ctx.collector.with_all(every, [&](const auto& archives) {
    for (const auto& [prefix, r] : archives) {
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
      for (const auto& source : r->sources()) {
        const double v = r->latest(source).value_or(std::nan(""));
        if (std::isnan(v)) continue;
        const auto d = metrics::describe(source);
        add(metric_name(is_host ? "xapid_host_" : is_sr ? "xapid_sr_" : "xapid_vm_", source), d.description + (d.units.empty() ? "" : " (" + d.units + ")"),
            labels, v);
      }
    }
  });
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
  std::string out;
  for (const auto& [name, f] : families) {
    out += "# HELP " + name + " " + f.first + "\n# TYPE " + name + (name.ends_with("_total") ? " counter\n" : " gauge\n");
    out += f.second;
  }
  return out;
}

}  // namespace xapid::gateway
