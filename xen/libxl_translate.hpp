// Private to xen/: a domain_config into libxl's own types, shared by the JSON form
// (libxl_config) and the calls (libxl_backend), so both describe a domain the same way.
#pragma once

#include <string>

extern "C" {
#include <libxl.h>
#include <libxl_utils.h>
}

#include "common/result.hpp"
#include "xen/backend.hpp"

namespace xapid::xen {

// libxl_domain_config with its dispose, so every path out frees it.
struct owned_libxl_config {
  libxl_domain_config c;
  owned_libxl_config() { libxl_domain_config_init(&c); }
  ~owned_libxl_config() { libxl_domain_config_dispose(&c); }
  owned_libxl_config(const owned_libxl_config&) = delete;
  owned_libxl_config& operator=(const owned_libxl_config&) = delete;
};

// Fills `c` (initialised, empty) from `config`; fails on a bad uuid, MAC or vCPU count.
result<void, std::string> fill_libxl_config(const domain_config& config, libxl_domain_config& c);
// One disk (initialised `out`), as fill_libxl_config writes each.
void fill_libxl_disk(const disk& d, libxl_device_disk& out);
bool parse_libxl_mac(const std::string& text, libxl_mac& mac);

}  // namespace xapid::xen
