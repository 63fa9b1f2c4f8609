#include "xen/libxl_config.hpp"

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "xen/libxl_translate.hpp"

namespace xapid::xen {
namespace {

char* dup(const std::string& s) { return s.empty() ? nullptr : ::strdup(s.c_str()); }

bool truthy(const std::map<std::string, std::string>& platform, const char* key, bool& out) {
  auto it = platform.find(key);
  if (it == platform.end()) return false;
  out = it->second == "true" || it->second == "1";
  return true;
}

libxl_disk_format format_of(const disk& d) {
  auto ends_with = [&](const char* suffix) {
    std::size_t n = std::strlen(suffix);
    return d.path.size() >= n && d.path.compare(d.path.size() - n, n, suffix) == 0;
  };
  if (d.path.empty()) return LIBXL_DISK_FORMAT_EMPTY;
  if (ends_with(".qcow2")) return LIBXL_DISK_FORMAT_QCOW2;
  if (ends_with(".vhd")) return LIBXL_DISK_FORMAT_VHD;
  return LIBXL_DISK_FORMAT_RAW;
}

bool parse_mac(const std::string& text, libxl_mac& mac) {
  unsigned b[6];
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) return false;
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<std::uint8_t>(b[i]);
  return true;
}

}  // namespace

bool parse_libxl_mac(const std::string& text, libxl_mac& mac) { return parse_mac(text, mac); }

void fill_libxl_disk(const disk& d, libxl_device_disk& out) {
  out.vdev = dup(d.device);
  out.pdev_path = dup(d.path);
  out.format = format_of(d);
  out.backend = LIBXL_DISK_BACKEND_QDISK;
  out.readwrite = d.read_only ? 0 : 1;
  out.is_cdrom = d.cdrom ? 1 : 0;
  out.removable = d.cdrom ? 1 : 0;
}

result<void, std::string> fill_libxl_config(const domain_config& config, libxl_domain_config& c) {
  const libxl_domain_type type = config.hvm ? LIBXL_DOMAIN_TYPE_HVM : LIBXL_DOMAIN_TYPE_PV;
  c.c_info.type = type;
  c.c_info.name = dup(config.name);
  if (libxl_uuid_from_string(&c.c_info.uuid, config.uuid.c_str()) != 0) return fail("invalid uuid " + config.uuid);
  libxl_domain_build_info_init_type(&c.b_info, type);

  if (config.vcpus < 1 || config.vcpus > config.vcpus_max)
    return fail("vcpus " + std::to_string(config.vcpus) + " outside 1.." + std::to_string(config.vcpus_max));
  c.b_info.max_vcpus = config.vcpus_max;
  // The vCPUs online at boot, as a bitmap libxl frees with free().
  c.b_info.avail_vcpus.size = static_cast<uint32_t>((config.vcpus_max + 7) / 8);
  c.b_info.avail_vcpus.map = static_cast<uint8_t*>(std::calloc(c.b_info.avail_vcpus.size, 1));
  for (int i = 0; i < config.vcpus; ++i) c.b_info.avail_vcpus.map[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
  c.b_info.max_memkb = static_cast<uint64_t>(config.memory_max_bytes / 1024);
  c.b_info.target_memkb = static_cast<uint64_t>((config.memory_target_bytes ? config.memory_target_bytes
                                                                            : config.memory_max_bytes) / 1024);
  bool flag;
  if (truthy(config.platform, "acpi", flag)) libxl_defbool_set(&c.b_info.acpi, flag);
  if (truthy(config.platform, "apic", flag)) libxl_defbool_set(&c.b_info.apic, flag);
  if (config.hvm) {
    c.b_info.u.hvm.boot = dup(config.boot_order);
    if (truthy(config.platform, "pae", flag)) libxl_defbool_set(&c.b_info.u.hvm.pae, flag);
    if (truthy(config.platform, "nx", flag)) libxl_defbool_set(&c.b_info.u.hvm.nx, flag);
    if (truthy(config.platform, "viridian", flag)) libxl_defbool_set(&c.b_info.u.hvm.viridian, flag);
  } else {
    c.b_info.u.pv.kernel = dup(config.kernel);
    c.b_info.u.pv.ramdisk = dup(config.ramdisk);
    c.b_info.u.pv.cmdline = dup(config.cmdline);
    c.b_info.u.pv.bootloader = dup(config.bootloader);
  }

  c.num_disks = static_cast<int>(config.disks.size());
  c.disks = static_cast<libxl_device_disk*>(std::calloc(config.disks.size() + 1, sizeof(libxl_device_disk)));
  for (std::size_t i = 0; i < config.disks.size(); ++i) {
    const disk& d = config.disks[i];
    libxl_device_disk_init(&c.disks[i]);
    fill_libxl_disk(d, c.disks[i]);
  }
  c.num_nics = static_cast<int>(config.nics.size());
  c.nics = static_cast<libxl_device_nic*>(std::calloc(config.nics.size() + 1, sizeof(libxl_device_nic)));
  for (std::size_t i = 0; i < config.nics.size(); ++i) {
    const nic& n = config.nics[i];
    libxl_device_nic_init(&c.nics[i]);
    c.nics[i].devid = n.index;
    // An empty MAC is one libxl chooses.
    if (!n.mac.empty() && !parse_mac(n.mac, c.nics[i].mac)) return fail("invalid MAC " + n.mac);
    c.nics[i].bridge = dup(n.bridge);
  }
  return ok_v;
}

result<std::string, std::string> libxl_config_json(const domain_config& config) {
  owned_libxl_config o;
  if (auto r = fill_libxl_config(config, o.c); !r) return fail(r.error());
  libxl_domain_config& c = o.c;
  char* json = libxl_domain_config_to_json(nullptr, &c);
  if (!json) return fail(std::string("libxl could not write the configuration"));
  std::string out(json);
  std::free(json);
  return out;
}

bool xen_hypervisor_present() {
  std::ifstream caps("/proc/xen/capabilities");
  std::string text;
  return caps && std::getline(caps, text) && text.find("control_d") != std::string::npos;
}

}  // namespace xapid::xen
