#include "gateway/first_boot.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>

namespace xapid::gateway {
namespace {

// API version reported to clients: that of the release whose API the seed documents.
constexpr std::int64_t api_version_major = 2;
constexpr std::int64_t api_version_minor = 1;

std::string local_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

}  // namespace

api::api_result<host_identity> ensure_pool_and_host(storage::database& db, const std::string& data_dir,
                                                    const std::string& address) {
  const std::string inventory = data_dir + "/inventory";
  std::string host_uuid;
  {
    std::ifstream in(inventory);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("INSTALLATION_UUID=", 0) == 0) host_uuid = line.substr(18);
  }
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
  if (id.host.empty()) {
    api::host h;
    h.uuid = host_uuid;
    h.name_label = local_hostname();
    h.name_description = "Default install";
    h.hostname = h.name_label;
    h.address = address;
    h.API_version_major = api_version_major;
    h.API_version_minor = api_version_minor;
    h.API_version_vendor = "XenSource";
    h.enabled = true;
    h.software_version = {{"product_brand", "xapid"}, {"product_version", "0.1.0"}, {"xapi", "1.3"}};
    h.sched_policy = "credit";
    h.display = api::host_display::enabled;
    id.host = t.create(h);
  }
  if (id.pool.empty()) {
    api::pool p;
    p.master.opaque = id.host;
    id.pool = t.create(p);
  }
  auto r = db.commit(std::move(t));
  if (!r) return fail(std::move(r).error());
  return id;
}

}  // namespace xapid::gateway
