#include "metrics/perfmon.hpp"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include <pugixml.hpp>
#include <re2/re2.h>
#include <spdlog/spdlog.h>

#include "common/loggable.hpp"

#include "metrics/collector.hpp"
#include "storage/schema.hpp"

namespace xapid::metrics {
namespace {

// The longest config and pattern taken: other_config values are an admin's text.
// What one host spends on the configs: an administrator's text, judged by the daemon that runs
// as root. xapi's configs are three deep with a few variables of short patterns.
constexpr std::size_t max_config_bytes = 64 * 1024, max_pattern_bytes = 256, max_element_bytes = 4096;
constexpr std::size_t max_variables = 16;             // per object
constexpr std::size_t max_watched_variables = 4096;   // of every object a host watches
constexpr std::int64_t max_pattern_memory = 64 << 10;  // RE2's program and DFA, per pattern
constexpr int max_depth = 16;                          // the body's printer recurses
constexpr std::int64_t max_period = std::int64_t{1} << 40;  // seconds either way: no overflow in the counts

// How deeply the document nests, walked without recursion (a config is an admin's text).
int depth_of(const pugi::xml_node& root) {
  int deepest = 0, depth = 0;
  pugi::xml_node n = root.first_child();
  while (n) {
    deepest = std::max(deepest, ++depth);
    if (n.first_child()) {
      n = n.first_child();
      continue;
    }
    --depth;
    while (n && !n.next_sibling()) {
      n = n.parent();
      --depth;
      if (n == root) return deepest;
    }
    if (n) n = n.next_sibling();
  }
  return deepest;
}

// xapi's defaults (VMMonitor, HOSTMonitor, SRMonitor .get_default_variable_config); nullopt
// where it has none (the config must then say).
std::optional<std::string> default_regex(watched_kind kind, const std::string& name) {
  switch (kind) {
    case watched_kind::vm:
      if (name == "cpu_usage") return "cpu[0-9]+";
      if (name == "network_usage") return "vif_[0-9]+_[rt]x";
      if (name == "disk_usage") return "vbd_(xvd|hd)[a-z]+_(read|write)";
      if (name == "fs_usage" || name == "log_fs_usage" || name == "mem_usage") return "_$_DUMMY__";  // matches nothing
      if (name == "memory_internal_free") return name;
      return std::nullopt;
    case watched_kind::host:
      if (name == "cpu_usage") return "cpu[0-9]+";
      if (name == "network_usage") return "pif_eth[0-9]+_[rt]x";
      if (name == "memory_free_kib") return name;
      if (name.size() == 31 && name.rfind("sr_io_throughput_total_", 0) == 0 &&
          name.find_first_not_of("0123456789abcdef", 23) == std::string::npos)
        return name.substr(3);
      return std::nullopt;
    case watched_kind::sr:
      if (name == "physical_utilisation") return "physical_utilisation|size";
      if (name == "sr_io_throughput_total_per_host") return "_$_DUMMY__";
      return std::nullopt;
  }
  return std::nullopt;
}

std::string default_combine(watched_kind kind, const std::string& name) {
  if (name == "cpu_usage" && kind != watched_kind::sr) return "average";
  if (kind == watched_kind::vm && name == "fs_usage") return "get_percent_fs_usage";
  if (kind == watched_kind::vm && name == "log_fs_usage") return "get_percent_log_fs_usage";
  if (kind == watched_kind::vm && name == "mem_usage") return "get_percent_mem_usage";
  if (kind == watched_kind::sr && name == "physical_utilisation") return "get_percent_sr_usage";
  return "sum";
}

std::optional<std::string> default_level(watched_kind kind, const std::string& name) {
  if (kind == watched_kind::vm && (name == "fs_usage" || name == "log_fs_usage")) return "0.9";
  if (kind == watched_kind::vm && name == "mem_usage") return "0.95";
  if (kind == watched_kind::sr && name == "physical_utilisation") return "0.8";
  return std::nullopt;
}

std::optional<combine> combine_of(const std::string& s) {
  if (s == "sum") return combine::sum;
  if (s == "average") return combine::average;
  if (s == "max") return combine::max;
  if (s == "get_percent_sr_usage") return combine::sr_usage;
  if (s == "get_percent_fs_usage") return combine::fs_usage;
  if (s == "get_percent_log_fs_usage") return combine::log_fs_usage;
  if (s == "get_percent_mem_usage") return combine::mem_usage;
  return std::nullopt;
}

// A whole string as a number, as Python's int() and float() take it (surrounding blanks).
std::optional<double> real_of(const std::string& s) {
  const char* b = s.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(b, &end);  // (1e309 is inf and 1e-320 subnormal, as Python's float())
  if (end == b) return std::nullopt;
  while (*end == ' ' || *end == '\t' || *end == '\n') ++end;
  if (*end != '\0') return std::nullopt;
  return v;
}

std::optional<std::int64_t> integer_of(const std::string& s) {
  const char* b = s.c_str();
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(b, &end, 10);
  if (end == b || errno == ERANGE) return std::nullopt;
  while (*end == ' ' || *end == '\t' || *end == '\n') ++end;
  if (*end != '\0') return std::nullopt;
  return std::clamp<std::int64_t>(v, -max_period, max_period);
}

void escape_attribute(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
}

// An element as Python's minidom toprettyxml() writes it (tab indents, "<a/>" when empty): the
// alarm's body quotes the variable so.
void pretty(const pugi::xml_node& n, int depth, std::string& out) {
  const std::string indent(static_cast<std::size_t>(depth), '\t');
  if (n.type() == pugi::node_pcdata || n.type() == pugi::node_cdata) {
    std::string text = n.value();
    const auto b = text.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return;
    text = text.substr(b, text.find_last_not_of(" \t\r\n") - b + 1);
    out += indent;
    escape_attribute(out, text);
    out += '\n';
    return;
  }
  if (n.type() != pugi::node_element) return;
  out += indent + "<" + n.name();
  for (const auto& a : n.attributes()) {
    out += ' ';
    out += a.name();
    out += "=\"";
    escape_attribute(out, a.value());
    out += '"';
  }
  bool any = false;
  for (const auto& c : n.children()) any = any || c.type() == pugi::node_element || c.type() == pugi::node_pcdata;
  if (!any) {
    out += "/>\n";
    return;
  }
  out += ">\n";
  for (const auto& c : n.children()) pretty(c, depth + 1, out);
  out += indent + "</" + n.name() + ">\n";
}

double percent_of_df(const char* path) {
  struct statvfs st {};
  if (::statvfs(path, &st) != 0) return std::nan("");
  const double used = static_cast<double>(st.f_blocks - st.f_bfree), avail = static_cast<double>(st.f_bavail);
  if (used + avail <= 0) return std::nan("");
  return std::ceil(used * 100 / (used + avail)) / 100;  // df's Use%, rounded up as df rounds it
}

}  // namespace

std::string_view class_name(watched_kind k) noexcept {
  switch (k) {
    case watched_kind::vm: return "VM";
    case watched_kind::host: return "Host";
    case watched_kind::sr: return "SR";
  }
  return "VM";
}

double mem_usage_of(std::string_view meminfo) {
  std::map<std::string, double> kib;
  std::istringstream in{std::string(meminfo)};
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    kib[line.substr(0, colon)] = std::strtod(line.c_str() + colon + 1, nullptr);
  }
  for (const char* k : {"MemTotal", "MemFree", "Buffers", "Cached", "SwapTotal", "SwapFree"})
    if (!kib.count(k)) return 0;
  if (kib["MemTotal"] <= 0) return 0;
  const double in_use = kib["MemTotal"] - kib["MemFree"] - kib["Buffers"] - kib["Cached"];
  return (in_use + kib["SwapTotal"] - kib["SwapFree"]) / kib["MemTotal"];
}

system_usage read_system_usage() {
  system_usage u;
  u.fs_usage = percent_of_df("/etc/passwd");
  struct stat root {}, logs {};
  u.log_fs_usage = ::stat("/etc/passwd", &root) == 0 && ::stat("/var/log", &logs) == 0 && root.st_dev != logs.st_dev
                       ? percent_of_df("/var/log")
                       : std::nan("");
  std::ifstream in("/proc/meminfo");
  std::stringstream text;
  text << in.rdbuf();
  u.mem_usage = mem_usage_of(text.str());
  return u;
}

result<std::vector<alarm_variable>, std::string> parse_perfmon(watched_kind kind, std::string_view xml) {
  if (xml.size() > max_config_bytes) return fail("the config is over 64 KiB");
  pugi::xml_document doc;
  if (auto parsed = doc.load_buffer(xml.data(), xml.size(), pugi::parse_default); !parsed)
    return fail(std::string("XML parse error: ") + parsed.description());
  if (depth_of(doc) > max_depth) return fail("the config nests deeper than " + std::to_string(max_depth) + " elements");
  std::vector<alarm_variable> out;
  const auto variables = doc.select_nodes("//variable");
  if (variables.size() > max_variables) return fail("the config has more than " + std::to_string(max_variables) + " variables");
  for (const auto& found : variables) {
    const pugi::xml_node v = found.node();
    const pugi::xml_node name_node = v.select_node(".//name").node();
    if (!name_node) return fail("variable missing 'name' tag");
    alarm_variable a;
    a.name = name_node.attribute("value").value();
    auto value = [&](const char* tag) -> std::optional<std::string> {
      if (const pugi::xml_node n = v.select_node((std::string(".//") + tag).c_str()).node()) return std::string(n.attribute("value").value());
      return std::nullopt;
    };
    const std::string& name = a.name;
    auto pattern = value("rrd_regex");
    if (!pattern) pattern = default_regex(kind, name);
    if (!pattern) return fail("variable " + name + ": no default rrd_regex - please specify one");
    if (pattern->size() > max_pattern_bytes) return fail("variable " + name + ": rrd_regex is over 256 bytes");
    RE2::Options options;
    options.set_log_errors(false);
    options.set_max_mem(max_pattern_memory);
    auto re = std::make_shared<const re2::RE2>("^(?:" + *pattern + ")$", options);
    if (!re->ok()) return fail("variable " + name + ": regex " + *pattern + " does not compile");
    a.pattern = std::move(re);
    const std::string fn = value("consolidation_fn").value_or(default_combine(kind, name));
    auto c = combine_of(fn);
    if (!c) return fail("variable " + name + ": consolidation function " + fn + " not supported");
    a.fn = *c;
    const std::string trigger = value("alarm_trigger_period").value_or("60"), inhibit = value("alarm_auto_inhibit_period").value_or("3600");
    auto t = integer_of(trigger);
    if (!t) return fail("variable " + name + ": alarm_trigger_period " + trigger + " not an int");
    auto i = integer_of(inhibit);
    if (!i) return fail("variable " + name + ": alarm_auto_inhibit_period " + inhibit + " not an int");
    a.trigger_period = *t;
    a.inhibit_period = *i;
    auto level_text = value("alarm_trigger_level");
    if (!level_text) level_text = default_level(kind, name);
    if (!level_text) return fail("variable " + name + ": no default alarm_trigger_level - please specify one");
    auto level = real_of(*level_text);
    if (!level) return fail("variable " + name + ": alarm_trigger_level " + *level_text + " not a float");
    a.level = *level;
    const std::string sense = value("alarm_trigger_sense").value_or(
        (name == "memory_internal_free" && kind == watched_kind::vm) || (name == "memory_free_kib" && kind == watched_kind::host) ? "low" : "high");
    a.high = sense == "high";
    const std::string priority = value("alarm_priority").value_or("3");
    auto p = integer_of(priority);
    if (!p) return fail("variable " + name + ": alarm_priority " + priority + " not an int");
    a.priority = *p;
    pretty(v, 0, a.element);
    if (a.element.size() > max_element_bytes) return fail("variable " + name + " is over 4 KiB as XML");
    // A later variable of the same name replaces an earlier one (xapi keeps one per name).
    std::erase_if(out, [&](const alarm_variable& e) { return e.name == a.name; });
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<alarm> perfmon::evaluate(const std::vector<object_rows>& objects, std::int64_t step, std::int64_t now,
                                     const system_usage& sys) {
  std::vector<alarm> alarms;
  std::map<std::string, object_state> next;
  std::size_t watched = 0;  // variables kept so far, of every object
  for (const auto& o : objects) {
    // (Keyed by class too: an SR introduced with a VM's uuid is another object.)
    const std::string key = std::string(class_name(o.kind)) + "/" + o.uuid;
    object_state& st = next[key];
    auto before = objects_.find(key);
    if (before != objects_.end() && before->second.config == o.config) {
      st = std::move(before->second);
    } else {
      st.config = o.config;
      std::vector<alarm_variable> parsed;
      if (!o.config.empty()) {
        auto p = parse_perfmon(o.kind, o.config);
        if (p && watched + p->size() > max_watched_variables) p = fail("this host already watches " + std::to_string(watched) + " variables");
        if (p) parsed = std::move(p).value();
        else
          spdlog::warn("perfmon.config.ignored class={} uuid={} reason=\"{}\"", class_name(o.kind), loggable(o.uuid),
                       loggable(p.error(), 256));
      }
      // A variable whose XML is unchanged keeps its state.
      for (auto& v : parsed) {
        variable_state vs;
        bool kept = false;
        if (before != objects_.end())
          for (auto& old : before->second.variables)
            if (old.config.element == v.element && old.config.name == v.name) {
              vs = std::move(old);
              kept = true;
              break;
            }
        if (!kept) {
          vs.config = std::move(v);
          vs.down_counter = vs.config.trigger_period;
          vs.last_alarm = now - vs.config.inhibit_period;
        }
        st.variables.push_back(std::move(vs));
      }
    }
    watched += st.variables.size();
    for (auto& vs : st.variables) {
      const alarm_variable& c = vs.config;
      bool raised = false;  // at most one alarm of a variable per look, however many rows were bad
      std::vector<std::size_t> matched;
      for (std::size_t j = 0; j < o.sources.size(); ++j)
        if (re2::RE2::FullMatch(o.sources[j], *c.pattern)) matched.push_back(j);
      for (const auto& row : o.values) {
        double value = 0;
        switch (c.fn) {
          case combine::fs_usage: value = sys.fs_usage; break;
          case combine::log_fs_usage: value = sys.log_fs_usage; break;
          case combine::mem_usage: value = sys.mem_usage; break;
          case combine::sr_usage: {
            double used = std::nan(""), size = std::nan("");
            std::size_t n = 0;
            for (auto j : matched) {
              ++n;
              if (o.sources[j] == "size") size = row.at(j);
              else used = row.at(j);
            }
            value = n == 2 && size > 0 ? used / size : 0;  // xapi's answers 0.0 when it cannot
            break;
          }
          case combine::max: {
            value = matched.empty() ? std::nan("") : row.at(matched.front());
            for (auto j : matched)
              if (row.at(j) > value) value = row.at(j);
            break;
          }
          case combine::sum:
          case combine::average:
            for (auto j : matched) value += row.at(j);
            if (c.fn == combine::average && !matched.empty()) value /= static_cast<double>(matched.size());
            break;
        }
        const bool bad = c.high ? value > c.level : value < c.level;  // NaN is never bad
        if (!bad) {
          vs.down_counter = c.trigger_period;
          continue;
        }
        vs.down_counter -= step;
        if (vs.down_counter > 0) continue;
        vs.down_counter = c.trigger_period;
        if (raised || now - vs.last_alarm < c.inhibit_period) continue;
        raised = true;
        vs.last_alarm = now;
        char number[64];
        std::snprintf(number, sizeof number, "%f", value);
        alarms.push_back({o.kind, o.uuid, c.priority, std::string("value: ") + number + "\nconfig:\n" + c.element});
      }
    }
  }
  objects_ = std::move(next);
  return alarms;
}

alarm_watch::alarm_watch(collector& c, std::int64_t interval_seconds)
    : collector_(c), interval_(std::max<std::int64_t>(interval_seconds, step_seconds)),
      step_(interval_ >= 60 ? 60 : step_seconds) {}

std::vector<alarm> alarm_watch::run(const storage::state& s, std::int64_t now) {
  if (since_ < 0) since_ = now - interval_;
  auto objects = collector_.rows_since(step_, since_);
  const auto& schema = storage::schema::get();
  auto config_of = [](const auto& other_config) {
    auto it = other_config.find("perfmon");
    return it == other_config.end() ? std::string() : it->second;
  };
  for (auto& o : objects.objects) {
    switch (o.kind) {
      case watched_kind::vm:
        if (auto ref = s.ref_by_uuid(schema.class_of<api::vm>(), o.uuid)) o.config = config_of(s.get<api::vm>(*ref)->other_config);
        break;
      case watched_kind::host:
        if (auto ref = s.ref_by_uuid(schema.class_of<api::host>(), o.uuid)) o.config = config_of(s.get<api::host>(*ref)->other_config);
        break;
      case watched_kind::sr:
        if (auto ref = s.ref_by_uuid(schema.class_of<api::sr>(), o.uuid)) o.config = config_of(s.get<api::sr>(*ref)->other_config);
        break;
    }
  }
  if (objects.newest > since_) since_ = objects.newest;
  return perfmon_.evaluate(objects.objects, step_, now, read_system_usage());
}

}  // namespace xapid::metrics
