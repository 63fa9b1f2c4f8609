#include "pool/departure_objects.hpp"

#include <array>
#include <deque>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "storage/ref_values.hpp"
#include "storage/schema.hpp"

namespace xapid::pool {
namespace {

using storage::schema;
using row_key = std::pair<std::size_t, std::string>;  // class, ref

std::size_t class_named(std::string_view name) { return *schema::get().class_index(name); }

// Whether a row of class `cls` whose scalar field `field` points at a row of class `owner`
// belongs to that row, and goes with it.
bool owned_through(std::size_t cls, std::string_view field, std::size_t owner) {
  const std::string_view owner_name = schema::get().table(owner).desc->name;
  const std::string_view cls_name = schema::get().table(cls).desc->name;
  if (owner_name == "host") return field == "host" || field == "resident_on" || field == "this_host";
  if (owner_name == "VM") return field == "VM";
  if (owner_name == "VDI") return field == "VDI" && cls_name != "VM";
  if (owner_name == "SR") return field == "SR" && (cls_name == "VDI" || cls_name == "PBD");
  if (owner_name == "PIF") {
    static constexpr std::array<std::string_view, 4> made_of_pifs{"VLAN", "Bond", "tunnel", "network_sriov"};
    for (std::string_view c : made_of_pifs)
      if (cls_name == c) return true;
  }
  return false;
}

class departure {
 public:
  explicit departure(const storage::state& s) : s_(s) {}

  // Finds what goes with `host`; false when it is not a live host row.
  bool collect(const std::string& host) {
    const std::size_t host_cls = schema::get().class_of<api::host>();
    if (!s_.find(host_cls, host)) return false;
    take(host_cls, host);
    // Each row taken brings what it owns; an SR goes once every PBD that reaches it has gone.
    while (!queue_.empty()) {
      const row_key k = queue_.front();
      queue_.pop_front();
      bring_owned(k);
    }
    return true;
  }
  bool goes(std::size_t cls, const std::string& ref) const { return gone_.count({cls, ref}) > 0; }

  bool run(const std::string& host, storage::transaction& t) {
    const std::size_t host_cls = schema::get().class_of<api::host>();
    const storage::row* h = s_.find(host_cls, host);
    if (!collect(host)) return false;
    const api::api_error changed = api::errors::OPERATION_NOT_ALLOWED("the host changed while it was leaving the pool; try again");
    t.expect_unchanged(host_cls, host, h->modified, changed);
    // Its own fields, and the VMs resident on it (a derived set, which leaves `modified` be): a
    // VM started there meanwhile keeps the host in the pool.
    const std::size_t resident = *schema::get().field_index(host_cls, "resident_VMs");
    t.expect_field(host_cls, host, resident, schema::get().table(host_cls).ops->get_field(h->record.get(), resident), changed);
    unlink(t);
    // Owned rows before their owners.
    for (auto it = taken_.rbegin(); it != taken_.rend(); ++it) t.destroy(it->first, it->second);
    return true;
  }

 private:
  void take(std::size_t cls, const std::string& ref) {
    if (ref == api::null_ref_text || !s_.find(cls, ref) || !gone_.insert({cls, ref}).second) return;
    taken_.emplace_back(cls, ref);
    queue_.emplace_back(cls, ref);
  }

  void bring_owned(const row_key& k) {
    const auto& [cls, ref] = k;
    const storage::table_schema& ts = schema::get().table(cls);
    const storage::row* r = s_.find(cls, ref);
    // Its metrics describe it and nothing else.
    for (std::size_t f : ts.ref_fields) {
      const std::size_t to = ts.ref_target[f];
      if (to != storage::no_class && schema::get().table(to).desc->name.ends_with("metrics"))
        take(to, std::string(ts.ops->text_field(r->record.get(), f)));
    }
    for (const storage::table_schema& other : schema::get().tables())
      for (std::size_t f : other.ref_fields)
        if (other.ref_target[f] == cls && owned_through(other.index, other.desc->fields[f].name, cls))
          for (const std::string& owned : s_.refs_by_field(other.index, f, ref)) take(other.index, owned);
    // A PBD that goes may leave its SR unreachable.
    if (ts.desc->name == "PBD") {
      const std::size_t sr_cls = class_named("SR");
      const std::string sr(ts.ops->text_field(r->record.get(), *schema::get().field_index(cls, "SR")));
      bool reachable = false;
      for (const std::string& pbd : s_.refs_by_field(cls, *schema::get().field_index(cls, "SR"), sr))
        reachable |= !gone_.count({cls, pbd});
      if (!reachable) take(sr_cls, sr);
    }
  }

  // Every reference that stays, to a row that goes: null, or out of its set or map. (A derived
  // set or a many-to-many one storage keeps true by itself.)
  void unlink(storage::transaction& t) const {
    auto rewrite = [&](std::size_t cls, const std::string& ref) {
      return gone_.count({cls, ref}) ? std::string(api::null_ref_text) : ref;
    };
    for (const storage::table_schema& ts : schema::get().tables()) {
      std::vector<std::size_t> fields;
      for (std::size_t f = 0; f < ts.desc->fields.size(); ++f) {
        const auto& b = ts.bindings[f];
        if (b && (b->derived || b->many_to_many)) continue;
        if (storage::holds_refs(*ts.desc->fields[f].type)) fields.push_back(f);
      }
      if (fields.empty()) continue;
      s_.for_each(ts.index, [&](const std::string& ref, const storage::row& r) {
        if (gone_.count({ts.index, ref})) return true;
        for (std::size_t f : fields) {
          const wire::value before = ts.ops->get_field(r.record.get(), f);
          wire::value after = storage::rewrite_refs(*ts.desc->fields[f].type, before, rewrite);
          if (!(after == before)) t.set(ts.index, ref, f, std::move(after));
        }
        return true;
      });
    }
  }

  const storage::state& s_;
  std::vector<row_key> taken_;  // in the order found: each after its owner
  std::set<row_key> gone_;
  std::deque<row_key> queue_;
};

}  // namespace

bool departure_objects(const storage::state& s, const std::string& host, storage::transaction& t) { return departure(s).run(host, t); }

std::optional<api::api_error> departure_refused(const storage::state& s, const std::string& host) {
  const api::host* h = s.get<api::host>(host);
  if (!h) return api::errors::HANDLE_INVALID("host", host);
  for (const auto& vm : h->resident_VMs)
    if (const api::vm* v = s.get<api::vm>(vm.opaque); v && !v->is_control_domain && v->power_state != api::vm_power_state::Halted)
      return api::errors::OPERATION_NOT_ALLOWED("VM resident on host");
  // Beyond xapi (which leaves such a VM suspended with an image the pool no longer has): a
  // suspended VM whose memory image would leave with the host keeps the host in the pool.
  departure d(s);
  d.collect(host);
  const std::size_t vdi_cls = schema::get().class_of<api::vdi>();
  std::optional<api::api_error> refused;
  s.for_each_of<api::vm>([&](const std::string&, const api::vm& v) {
    if (v.power_state != api::vm_power_state::Suspended || !d.goes(vdi_cls, v.suspend_VDI.opaque)) return true;
    refused = api::errors::OPERATION_NOT_ALLOWED("VM " + v.uuid +
                                                 " is suspended with its memory image on the host's own storage: resume "
                                                 "it or shut it down first");
    return false;
  });
  return refused;
}

}  // namespace xapid::pool
