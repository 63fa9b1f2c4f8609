#include "metrics/simulated_load.hpp"

#include <cmath>
#include <cstdlib>

namespace xapid::metrics {

std::optional<xen::sim_load> parse_sim_load(const std::string& text) {
  xen::sim_load load;
  std::size_t at = 0;
  while (at < text.size()) {
    auto comma = text.find(',', at);
    std::string pair = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    at = comma == std::string::npos ? text.size() : comma + 1;
    auto eq = pair.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = pair.substr(0, eq);
    char* end = nullptr;
    const double v = std::strtod(pair.c_str() + eq + 1, &end);
    if (*end != '\0' || !std::isfinite(v) || v < 0) continue;
    if (key == "cpu") load.cpu = std::min(v, 1.0);
    else if (key == "disk_read") load.disk_read_bytes = v;
    else if (key == "disk_write") load.disk_write_bytes = v;
    else if (key == "net_rx") load.net_rx_bytes = v;
    else if (key == "net_tx") load.net_tx_bytes = v;
  }
  return load;
}

void apply_simulated_loads(const storage::state& s, const std::string& host, xen::sim_backend& sim) {
  for (const auto& ref : s.refs_where<api::vm>("resident_on", host)) {
    const api::vm* vm = s.get<api::vm>(ref);
    if (!vm || vm->is_control_domain) continue;
    auto it = vm->other_config.find("xapid-sim-load");
    auto load = it == vm->other_config.end() ? std::optional<xen::sim_load>(xen::sim_load{}) : parse_sim_load(it->second);
    if (load) sim.set_load(vm->uuid, *load);
  }
}

}  // namespace xapid::metrics
