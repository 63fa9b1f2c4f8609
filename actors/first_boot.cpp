#include "actors/first_boot.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <rapidjson/document.h>

namespace xapid::actors {

extern const char* const templates_json;  // templates.json, compiled in (templates.cpp.in)

namespace {

// API version reported to clients: that of the release whose API the seed documents.
constexpr std::int64_t api_version_major = 2;
constexpr std::int64_t api_version_minor = 1;

// A JSON value of templates.json as a wire value (numbers without a fraction are ints).
wire::value from_json(const rapidjson::Value& v) {
  if (v.IsString()) return wire::value(std::string(v.GetString(), v.GetStringLength()));
  if (v.IsBool()) return wire::value(v.GetBool());
  if (v.IsInt64()) return wire::value(std::int64_t{v.GetInt64()});
  if (v.IsNumber()) return wire::value(v.GetDouble());
  if (v.IsArray()) {
    wire::array a;
    for (const auto& e : v.GetArray()) a.push_back(from_json(e));
    return wire::value(std::move(a));
  }
  if (v.IsObject()) {
    wire::structure s;
    for (const auto& m : v.GetObject()) s.emplace_back(m.name.GetString(), from_json(m.value));
    return wire::value(std::move(s));
  }
  return {};
}

std::string local_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

}  // namespace

std::string installation_uuid(const std::string& data_dir) {
  std::ifstream in(data_dir + "/inventory");
  std::string line, uuid;
  while (std::getline(in, line))
    if (line.rfind("INSTALLATION_UUID=", 0) == 0) uuid = line.substr(18);
  return uuid;
}

api::api_result<host_identity> ensure_pool_and_host(storage::database& db, const std::string& data_dir,
                                                    const std::string& address, const xen::host_info& hardware) {
  const std::string inventory = data_dir + "/inventory";
  std::string host_uuid = installation_uuid(data_dir);
  if (host_uuid.empty()) {
    host_uuid = db.ids().uuid();
    std::string tmp = inventory + ".tmp";
    {
      std::ofstream out(tmp);
      out << "INSTALLATION_UUID=" << host_uuid << "\n";
      if (!out) return fail(api::errors::INTERNAL_ERROR("cannot write " + tmp));
    }
    if (::rename(tmp.c_str(), inventory.c_str()) != 0)
      return fail(api::errors::INTERNAL_ERROR("cannot write " + inventory));
  }

  const std::size_t host_cls = storage::schema::get().class_of<api::host>();
  const std::size_t pool_cls = storage::schema::get().class_of<api::pool>();
  auto snap = db.snapshot();
  host_identity id;
  if (auto ref = snap->ref_by_uuid(host_cls, host_uuid)) id.host = *ref;
  snap->for_each(pool_cls, [&](const std::string& ref, const storage::row&) {
    id.pool = ref;
    return false;
  });
  if (!id.host.empty() && !id.pool.empty()) return id;

  auto t = db.begin();
  std::string local_sr;
  if (id.host.empty()) {
    const std::string hostname = local_hostname();
    api::host h;
    h.uuid = host_uuid;
    h.name_label = hostname;
    h.name_description = "Default install";
    h.hostname = hostname;
    h.address = address;
    h.API_version_major = api_version_major;
    h.API_version_minor = api_version_minor;
    h.API_version_vendor = "XenSource";
    h.enabled = true;
    h.software_version = {{"product_brand", "xapid"}, {"product_version", "0.1.0"}, {"xapi", "1.3"},
                          {"xen", hardware.xen_version}};
    h.sched_policy = "credit";
    h.display = api::host_display::enabled;
    h.capabilities = {"xen-3.0-x86_64", "xen-3.0-x86_32p", "hvm-3.0-x86_32", "hvm-3.0-x86_32p", "hvm-3.0-x86_64"};
    h.cpu_info = {{"cpu_count", std::to_string(hardware.cpu_count)}, {"socket_count", "1"},
                  {"vendor", hardware.cpu_vendor}, {"modelname", hardware.cpu_model},
                  {"speed", std::to_string(hardware.cpu_speed_mhz)}};
    h.memory_overhead = 0;
    api::host_metrics metrics;
    metrics.memory_total = hardware.memory_total_bytes;
    metrics.memory_free = hardware.memory_free_bytes;
    metrics.live = true;
    h.metrics.opaque = t.create(metrics);
    id.host = t.create(h);

    for (int n = 0; n < hardware.cpu_count; ++n) {
      api::host_cpu cpu;
      cpu.host.opaque = id.host;
      cpu.number = n;
      cpu.vendor = hardware.cpu_vendor;
      cpu.modelname = hardware.cpu_model;
      cpu.speed = hardware.cpu_speed_mhz;
      t.create(cpu);
    }

    // The control domain: domain 0, running on this host since it booted.
    api::vm_metrics dom0_metrics;
    dom0_metrics.memory_actual = hardware.memory_total_bytes - hardware.memory_free_bytes;
    dom0_metrics.VCPUs_number = hardware.cpu_count;
    api::vm dom0;
    dom0.name_label = "Control domain on host: " + hostname;
    dom0.is_control_domain = true;
    dom0.power_state = api::vm_power_state::Running;
    dom0.resident_on.opaque = id.host;
    dom0.domid = 0;
    dom0.memory_static_max = dom0.memory_dynamic_max = dom0.memory_dynamic_min = dom0.memory_static_min =
        dom0.memory_target = dom0_metrics.memory_actual;
    dom0.VCPUs_max = dom0.VCPUs_at_startup = hardware.cpu_count;
    dom0.metrics.opaque = t.create(dom0_metrics);
    std::string dom0_ref = t.create(dom0);
    api::console console;
    console.VM.opaque = dom0_ref;
    console.protocol = api::console_protocol::rfb;
    console.location = "https://" + address + "/console?ref=" + dom0_ref;
    t.create(console);

    // The management network and its PIF.
    api::network net;
    net.name_label = "Pool-wide network associated with eth0";
    net.bridge = "xenbr0";
    net.MTU = 1500;
    std::string net_ref = t.create(net);
    api::pif pif;
    pif.device = "eth0";
    pif.network.opaque = net_ref;
    pif.host.opaque = id.host;
    pif.MAC = "00:16:3e:00:00:01";
    pif.MTU = 1500;
    pif.VLAN = -1;
    pif.physical = true;
    pif.currently_attached = true;
    pif.management = true;
    pif.ip_configuration_mode = api::ip_configuration_mode::Static;
    pif.IP = address;
    pif.netmask = "255.255.255.0";
    t.create(pif);

    // The local SR: a directory of disk images in the data dir, plugged on this host.
    const std::string sr_uuid = db.ids().uuid();
    const std::string sr_dir = data_dir + "/sr/" + sr_uuid;
    std::error_code ec;
    std::filesystem::create_directories(sr_dir, ec);
    if (ec) return fail(api::errors::INTERNAL_ERROR("cannot create " + sr_dir + ": " + ec.message()));
    api::sr sr;
    sr.uuid = sr_uuid;
    sr.name_label = "Local storage";
    sr.name_description = "Disk images in " + sr_dir;
    sr.type = "ext";
    sr.content_type = "user";
    sr.other_config = {{"i18n-key", "local-storage"}};
    sr.sm_config = {{"devserial", "xapid-local"}};
    if (auto space = std::filesystem::space(sr_dir, ec); !ec) {
      sr.physical_size = static_cast<std::int64_t>(space.capacity);
      sr.physical_utilisation = static_cast<std::int64_t>(space.capacity - space.available);
    }
    local_sr = t.create(sr);
    api::pbd pbd;
    pbd.host.opaque = id.host;
    pbd.SR.opaque = local_sr;
    pbd.device_config = {{"location", sr_dir}};
    pbd.currently_attached = true;
    t.create(pbd);
  }
  if (id.pool.empty()) {
    // A new pool: this host is its master, and the pool gets the templates. A host whose
    // database already holds a pool (it was joined to one) is neither.
    rapidjson::Document doc;
    doc.Parse(templates_json);
    if (doc.HasParseError() || !doc.HasMember("templates"))
      return fail(api::errors::INTERNAL_ERROR("templates.json is not valid"));
    const std::size_t vm_cls = storage::schema::get().class_of<api::vm>();
    for (const auto& tmpl : doc["templates"].GetArray()) {
      wire::value record = from_json(tmpl);
      auto& members = *record.as_struct();
      members.emplace_back("is_a_template", wire::value(true));
      members.emplace_back("user_version", wire::value(1));
      members.emplace_back("actions_after_shutdown", wire::value("destroy"));
      members.emplace_back("actions_after_reboot", wire::value("restart"));
      members.emplace_back("actions_after_crash", wire::value("restart"));
      members.emplace_back("domid", wire::value(-1));
      t.create(vm_cls, std::move(record));
    }
    api::pool p;
    p.master.opaque = id.host;
    p.default_SR.opaque = p.suspend_image_SR.opaque = p.crash_dump_SR.opaque = local_sr;
    id.pool = t.create(p);
  }
  auto r = db.commit(std::move(t));
  if (!r) return fail(std::move(r).error());
  return id;
}

}  // namespace xapid::actors
