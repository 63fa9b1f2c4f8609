// The translation of a domain_config into libxenlight's own domain configuration, written as
// the JSON libxl itself produces (libxl_domain_config_to_json): what libxl_backend will hand to
// libxl_domain_create_new, checkable here without a hypervisor.
#pragma once

#include <string>

#include "common/result.hpp"
#include "xen/backend.hpp"

namespace xapid::xen {

result<std::string, std::string> libxl_config_json(const domain_config& config);

// True on a Xen control domain (dom0), where libxl can reach the hypervisor.
bool xen_hypervisor_present();

}  // namespace xapid::xen
