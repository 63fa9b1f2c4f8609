#include "pool/join_rules.hpp"

#include <initializer_list>
#include <string_view>

namespace xapid::pool {
namespace {

using api::errors::HOSTS_NOT_HOMOGENEOUS;

bool same_entries(const api::map<std::string, std::string>& a, const api::map<std::string, std::string>& b,
                  std::initializer_list<std::string_view> keys) {
  for (std::string_view key : keys) {
    auto ia = a.find(std::string(key)), ib = b.find(std::string(key));
    const std::string_view va = ia == a.end() ? std::string_view() : std::string_view(ia->second);
    const std::string_view vb = ib == b.end() ? std::string_view() : std::string_view(ib->second);
    if (va != vb) return false;
  }
  return true;
}

bool ha_enabled(const storage::state& s) {
  const api::pool* p = s.first<api::pool>();
  return p && p->ha_enabled;
}

// The host's management interface, or nullptr.
const api::pif* management_pif(const storage::state& s, const std::string& host) {
  for (const auto& ref : s.refs_where<api::pif>("host", host))
    if (const api::pif* pif = s.get<api::pif>(ref); pif->management) return pif;
  return nullptr;
}

template <class R, class Pred>
bool any_of(const storage::state& s, Pred pred) {
  bool found = false;
  s.for_each_of<R>([&](const std::string&, const R& rec) { return !(found = pred(rec)); });
  return found;
}

// The VM stands for a domain that is or was running (its memory in use or in an image).
bool holds_a_domain(const api::vm& vm) {
  using ps = api::vm_power_state;
  return !vm.is_control_domain && !vm.is_a_snapshot &&
         (vm.power_state == ps::Running || vm.power_state == ps::Paused || vm.power_state == ps::Suspended);
}

}  // namespace

std::optional<std::string> master_host(const storage::state& s) {
  const api::pool* p = s.first<api::pool>();
  if (!p || !s.get<api::host>(p->master.opaque)) return std::nullopt;
  return p->master.opaque;
}

std::vector<api::api_error> join_failures(const storage::state& joiner, const storage::state& pool, bool force) {
  const auto master_ref = master_host(pool);
  if (!master_ref) return {api::errors::INTERNAL_ERROR("the pool database has no master host")};
  const api::host& master = *pool.get<api::host>(*master_ref);
  const auto self_ref = master_host(joiner);
  if (!self_ref) return {api::errors::HOST_STILL_BOOTING()};
  const api::host& self = *joiner.get<api::host>(*self_ref);
  const api::pif* management = management_pif(joiner, *self_ref);

  std::vector<api::api_error> failures;
  if (!management) failures.push_back(api::errors::HOST_STILL_BOOTING());
  if (ha_enabled(joiner) || ha_enabled(pool)) failures.push_back(api::errors::HA_IS_ENABLED());
  if (self.uuid == master.uuid)
    failures.push_back(api::errors::OPERATION_NOT_ALLOWED("Host cannot become slave of itself"));
  else if (pool.ref_by_uuid(storage::schema::get().class_of<api::host>(), self.uuid))
    failures.push_back(api::errors::OPERATION_NOT_ALLOWED("Host is already part of a pool"));
  if (joiner.count(storage::schema::get().class_of<api::host>()) > 1)
    failures.push_back(api::errors::JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS());
  if (any_of<api::vm>(joiner, holds_a_domain))
    failures.push_back(api::errors::JOINING_HOST_CANNOT_HAVE_RUNNING_OR_SUSPENDED_VMS());
  if (any_of<api::vm>(joiner, [](const api::vm& vm) { return !vm.current_operations.empty(); }))
    failures.push_back(api::errors::JOINING_HOST_CANNOT_HAVE_VMS_WITH_CURRENT_OPERATIONS());
  if (!same_entries(self.software_version, master.software_version, {"product_version", "platform_version"}))
    failures.push_back(api::errors::POOL_JOINING_HOST_MUST_HAVE_SAME_PRODUCT_VERSION());
  if (!force) {
    // xapi's software comparison (platform version, brand, build, git id), with xapid's own
    // toolstack and hypervisor versions, which stand for the platform version xapid lacks.
    if (!same_entries(self.software_version, master.software_version,
                      {"product_brand", "product_version", "platform_version", "build_number", "git_id", "xapi", "xen"}))
      failures.push_back(HOSTS_NOT_HOMOGENEOUS("software version differs"));
    if (!same_entries(self.cpu_info, master.cpu_info, {"vendor", "features"}))
      failures.push_back(HOSTS_NOT_HOMOGENEOUS("CPUs differ"));
  }
  if (any_of<api::sr>(joiner, [](const api::sr& sr) { return sr.shared; }))
    failures.push_back(api::errors::JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS());
  if (management && !management->physical) failures.push_back(api::errors::POOL_JOINING_HOST_MUST_HAVE_PHYSICAL_MANAGEMENT_NIC());
  if (self.external_auth_type != master.external_auth_type ||
      self.external_auth_service_name != master.external_auth_service_name)
    failures.push_back(api::errors::POOL_JOINING_EXTERNAL_AUTH_MISMATCH());
  return failures;
}

}  // namespace xapid::pool
