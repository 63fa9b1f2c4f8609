#include "pool/join_objects.hpp"

#include <map>
#include <utility>

#include "pool/join_rules.hpp"
#include "storage/ref_values.hpp"

namespace xapid::pool {
namespace {

using storage::schema;
using row_key = std::pair<std::size_t, std::string>;  // class, ref

bool default_template(const api::vm& vm) {
  auto it = vm.other_config.find("default_template");
  return it != vm.other_config.end() && (it->second == "true" || it->second == "1");
}

// Selects the joiner's rows, says where each of its refs points in the pool, and makes the
// rows' copies.
class join_copy {
 public:
  join_copy(const storage::state& joiner, const storage::state& pool) : joiner_(joiner), pool_(pool) {}

  api::api_result<std::vector<storage::op>> run(const std::string& host) {
    select(host);
    for (const row_key& k : taken_)
      if (auto st = check_free(k); !st) return fail(std::move(st).error());
    for (const row_key& k : taken_) copies_.emplace(k, copy_of(k));
    std::vector<storage::op> ops;
    for (const row_key& k : taken_) emit(k, ops);
    return ops;
  }

 private:
  struct target {
    std::string pool_ref;
    bool copied;  // the row is brought (else the pool's own row stands for it)
  };
  struct row_copy {
    wire::value fields;         // the record as the create operation carries it
    std::vector<row_key> deps;  // the brought rows it points at
    enum { waiting, visiting, emitted } mark = waiting;
  };

  void select(const std::string& host) {
    take<api::host>(host);
    for (const auto& cpu : joiner_.refs_where<api::host_cpu>("host", host)) take<api::host_cpu>(cpu);
    joiner_.for_each_of<api::sr>([&](const std::string& sr, const api::sr& rec) {
      if (rec.shared) return true;
      take<api::sr>(sr);
      for (const auto& pbd : joiner_.refs_where<api::pbd>("SR", sr))
        if (joiner_.get<api::pbd>(pbd)->host.opaque == host) take<api::pbd>(pbd);
      for (const auto& vdi : joiner_.refs_where<api::vdi>("SR", sr)) take<api::vdi>(vdi);
      return true;
    });
    for (const auto& pif : joiner_.refs_where<api::pif>("host", host))
      if (joiner_.get<api::pif>(pif)->physical) take<api::pif>(pif);
    std::map<std::string, std::string> pool_bridges;
    pool_.for_each_of<api::network>([&](const std::string& ref, const api::network& net) {
      if (!net.bridge.empty()) pool_bridges.emplace(net.bridge, ref);
      return true;
    });
    joiner_.for_each_of<api::network>([&](const std::string& ref, const api::network& net) {
      auto match = net.bridge.empty() ? pool_bridges.end() : pool_bridges.find(net.bridge);
      if (match == pool_bridges.end()) take<api::network>(ref);
      else to_pool_.emplace(row_key{class_of<api::network>(), ref}, target{match->second, false});
      return true;
    });
    joiner_.for_each_of<api::vm>([&](const std::string& vm, const api::vm& rec) {
      if (default_template(rec)) return true;
      take<api::vm>(vm);
      take_all<api::console>("VM", vm);
      take_all<api::vbd>("VM", vm);
      take_all<api::vif>("VM", vm);
      take_all<api::crashdump>("VM", vm);
      return true;
    });
  }

  template <class R>
  static std::size_t class_of() {
    return schema::get().class_of<R>();
  }
  template <class R>
  void take(const std::string& ref) {
    take(class_of<R>(), ref);
  }
  template <class R>
  void take_all(std::string_view field, const std::string& owner) {
    for (const auto& ref : joiner_.refs_where<R>(field, owner)) take<R>(ref);
  }
  // A row is brought with its metrics (host_metrics, VM_metrics, VBD_metrics, ...): they
  // describe it and nothing else.
  void take(std::size_t cls, const std::string& ref) {
    const storage::row* r = joiner_.find(cls, ref);
    if (!r || !to_pool_.emplace(row_key{cls, ref}, target{ref, true}).second) return;
    taken_.emplace_back(cls, ref);
    const storage::table_schema& ts = schema::get().table(cls);
    for (std::size_t f : ts.ref_fields) {
      const std::size_t to = ts.ref_target[f];
      if (to != storage::no_class && schema::get().table(to).desc->name.ends_with("metrics"))
        take(to, std::string(ts.ops->text_field(r->record.get(), f)));
    }
  }

  api::status check_free(const row_key& k) const {
    const auto& [cls, ref] = k;
    const storage::table_schema& ts = schema::get().table(cls);
    const std::string what = "the joining host's " + std::string(ts.desc->name) + " " + ref;
    if (pool_.find_any(cls, ref)) return fail(api::errors::INTERNAL_ERROR(what + ": its ref is in the pool database"));
    if (ts.uuid_field) {
      const std::string_view uuid = ts.ops->text_field(joiner_.find(cls, ref)->record.get(), *ts.uuid_field);
      if (pool_.ref_by_uuid(cls, uuid))
        return fail(api::errors::INTERNAL_ERROR(what + ": its uuid " + std::string(uuid) + " is in the pool database"));
    }
    return ok_v;
  }

  row_copy copy_of(const row_key& k) const {
    const auto& [cls, ref] = k;
    const storage::table_schema& ts = schema::get().table(cls);
    auto rec = ts.ops->make_shared(joiner_.find(cls, ref)->record.get());
    storage::reset_for_copy(cls, rec.get());
    row_copy out;
    std::vector<row_key> unordered;
    for (std::size_t f = 0; f < ts.desc->fields.size(); ++f) {
      const api::type_desc& type = *ts.desc->fields[f].type;
      if (!storage::holds_refs(type)) continue;
      // The commit checks that a ref or set of refs names a row that exists (so the row it names
      // is created first), not the refs in a map (network.assigned_ips names VIFs that name
      // the network: ordering by those would be a cycle).
      std::vector<row_key>& deps = ts.ref_target[f] != storage::no_class ? out.deps : unordered;
      (void)ts.ops->set_field(rec.get(), f, in_pool(type, ts.ops->get_field(rec.get(), f), deps));
    }
    out.fields = storage::record_to_fields(ts, rec.get());
    return out;
  }

  // A value as it is to be in the pool: refs of brought rows stay, those of matched rows become
  // the pool's, others are null (and leave a set or map). The brought rows it points at are
  // added to `deps`.
  wire::value in_pool(const api::type_desc& t, const wire::value& v, std::vector<row_key>& deps) const {
    return storage::rewrite_refs(t, v, [&](std::size_t cls, const std::string& ref) {
      auto it = to_pool_.find(row_key{cls, ref});
      if (it == to_pool_.end()) return std::string(api::null_ref_text);
      if (it->second.copied) deps.push_back(it->first);
      return it->second.pool_ref;
    });
  }

  // Appends the creation of `root` after those of the rows it points at (depth first, with a
  // stack of its own: a chain of snapshots may be long). A cycle among the rows would leave a
  // reference to a row created later, which the commit refuses: the datamodel's references
  // between brought rows (a VDI's parent, a VM's snapshot_of) have none.
  void emit(const row_key& root, std::vector<storage::op>& ops) {
    std::vector<std::pair<const row_key*, std::size_t>> stack;  // a row and its next dependency
    auto visit = [&](const row_key& k) {
      row_copy& c = copies_.at(k);
      if (c.mark != row_copy::waiting) return;
      c.mark = row_copy::visiting;
      stack.emplace_back(&copies_.find(k)->first, 0);
    };
    visit(root);
    while (!stack.empty()) {
      const row_key& k = *stack.back().first;
      row_copy& c = copies_.at(k);
      if (std::size_t next = stack.back().second++; next < c.deps.size()) {
        visit(c.deps[next]);
        continue;
      }
      c.mark = row_copy::emitted;
      ops.push_back(storage::op{storage::op_kind::create, static_cast<std::uint32_t>(k.first), k.second, 0, {},
                                std::move(c.fields)});
      stack.pop_back();
    }
  }

  const storage::state& joiner_;
  const storage::state& pool_;
  std::map<row_key, target> to_pool_;  // every joiner's row that has a place in the pool
  std::vector<row_key> taken_;         // the brought rows, in the order selected
  std::map<row_key, row_copy> copies_;
};

}  // namespace

api::api_result<std::vector<storage::op>> join_objects(const storage::state& joiner, const storage::state& pool) {
  const auto host = master_host(joiner);
  if (!host) return fail(api::errors::HOST_STILL_BOOTING());
  return join_copy(joiner, pool).run(*host);
}

}  // namespace xapid::pool
