#include "xen/proc_stats.hpp"

#include <algorithm>
#include <charconv>

namespace xapid::xen {
namespace {

template <class T>
std::optional<T> number(std::string_view s) {
  T v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

}  // namespace

std::vector<device_counters> parse_net_dev(std::string_view text) {
  std::vector<device_counters> out;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    // "  eth0: 1234 5 0 0 0 0 0 0 5678 9 ..." : 8 received fields, then the sent ones.
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // the two header lines
    auto name = fields(line.substr(0, colon));
    auto values = fields(line.substr(colon + 1));
    if (name.size() != 1 || values.size() < 9) continue;
    auto in = number<std::uint64_t>(values[0]), out_bytes = number<std::uint64_t>(values[8]);
    if (!in || !out_bytes) continue;
    out.push_back({std::string(name[0]), *in, *out_bytes});
  }
  return out;
}

std::optional<double> parse_loadavg(std::string_view text) {
  auto f = fields(text.substr(0, text.find('\n')));
  if (f.empty()) return std::nullopt;
  std::string first(f[0]);
  char* end = nullptr;
  double v = std::strtod(first.c_str(), &end);
  if (end != first.c_str() + first.size() || !(v >= 0)) return std::nullopt;
  return v;
}

std::optional<block_backend> parse_block_backend(std::string_view name) {
  if (!name.starts_with("vbd-")) return std::nullopt;
  name.remove_prefix(4);
  const auto dash = name.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto domid = number<int>(name.substr(0, dash));
  auto devid = number<int>(name.substr(dash + 1));
  if (!domid || !devid || *devid < 0) return std::nullopt;
  const int major = *devid >> 8, minor = *devid & 0xff;
  // Xen's virtual disks (202) take 16 minors each; IDE's first disks (3) take 64.
  if (major == 202 && minor % 16 == 0 && minor / 16 < 26) return block_backend{*domid, std::string("xvd") + char('a' + minor / 16)};
  if (major == 3 && minor % 64 == 0) return block_backend{*domid, std::string("hd") + char('a' + minor / 64)};
  return block_backend{*domid, std::to_string(*devid)};
}

std::optional<std::pair<int, int>> parse_vif_name(std::string_view name) {
  if (!name.starts_with("vif")) return std::nullopt;
  name.remove_prefix(3);
  const auto dot = name.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto domid = number<int>(name.substr(0, dot));
  auto index = number<int>(name.substr(dot + 1));
  if (!domid || !index) return std::nullopt;
  return std::pair{*domid, *index};
}

std::vector<std::uint64_t> busy_from_idle(std::uint64_t now_ns, const std::vector<std::uint64_t>& idle_ns,
                                          const std::vector<std::uint64_t>& previous) {
  std::vector<std::uint64_t> out(idle_ns.size());
  for (std::size_t i = 0; i < idle_ns.size(); ++i) {
    const std::uint64_t busy = now_ns > idle_ns[i] ? now_ns - idle_ns[i] : 0;
    out[i] = i < previous.size() ? std::max(busy, previous[i]) : busy;
  }
  return out;
}

std::optional<std::int64_t> parse_meminfo_kib(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  auto kib = number<std::int64_t>(text);
  if (!kib || *kib < 0 || *kib > (std::int64_t{1} << 42)) return std::nullopt;  // (at most 4 PiB)
  return *kib * 1024;
}

}  // namespace xapid::xen
