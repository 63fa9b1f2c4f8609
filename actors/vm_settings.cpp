// A VM's settings: its live memory range and vCPUs, changes guarded by an operation of their
// own (change_settings), and edits of fields no operation guards.
#include "actors/vm_lifecycle_impl.hpp"

namespace xapid::actors {
namespace {

using ps = api::vm_power_state;

}  // namespace

vm_lifecycle::result_void vm_lifecycle::set_memory_dynamic_range(const std::string& vm, std::int64_t min,
                                                                 std::int64_t max, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::changing_dynamic_range, task,
                           [d, vm, min, max]() -> api::api_result<wire::value> {
                             auto s = d->db.snapshot();
                             const api::vm* v = s->get<api::vm>(vm);
                             if (min < v->memory_static_min || min > max)
                               return fail(api::errors::INVALID_VALUE("memory_dynamic_min", std::to_string(min)));
                             if (max > v->memory_static_max)
                               return fail(api::errors::INVALID_VALUE("memory_dynamic_max", std::to_string(max)));
                             if (v->power_state == ps::Running)
                               if (auto r = d->hv.set_memory_target(static_cast<int>(v->domid), max); !r)
                                 return fail(from_backend(r.error()));
                             api::vm after = *v;
                             after.memory_dynamic_min = min;
                             after.memory_dynamic_max = max;
                             if (v->power_state == ps::Running) after.memory_target = max;
                             auto t = d->db.begin();
                             t.update(vm, *v, after);
                             if (v->power_state == ps::Running) d->record_host_memory(t, *s);
                             return d->commit(std::move(t));
                           }));
}

vm_lifecycle::result_void vm_lifecycle::set_VCPUs_number_live(const std::string& vm, std::int64_t n,
                                                              const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::changing_VCPUs_live, task, [d, vm, n]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vm* v = s->get<api::vm>(vm);
    if (n < 1 || n > v->VCPUs_max) return fail(api::errors::INVALID_VALUE("nvcpu", std::to_string(n)));
    if (auto r = d->hv.set_vcpus(static_cast<int>(v->domid), static_cast<int>(n)); !r) return fail(from_backend(r.error()));  // n <= VCPUs_max <= max_vcpus
    api::vm after = *v;
    after.VCPUs_at_startup = n;
    auto t = d->db.begin();
    t.update(vm, *v, after);
    if (const api::vm_metrics* m = s->get<api::vm_metrics>(v->metrics.opaque)) {
      api::vm_metrics ma = *m;
      ma.VCPUs_number = n;
      t.update(v->metrics.opaque, *m, ma);
    }
    return d->commit(std::move(t));
  }));
}

vm_lifecycle::result_void vm_lifecycle::change_settings(const std::string& vm, api::vm_operations op,
                                                        std::function<api::status(api::vm&)> edit,
                                                        const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, op, task, [d, vm, edit]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vm* v = s->get<api::vm>(vm);
    api::vm after = *v;
    if (auto st = edit(after); !st) return fail(st.error());
    if (auto st = vm_rules::check_memory_order(after); !st) return fail(st.error());
    if (auto st = vm_rules::check_vcpus(after); !st) return fail(st.error());
    auto t = d->db.begin();
    if (v->power_state == ps::Running && after.memory_dynamic_max != v->memory_dynamic_max) {
      if (auto r = d->hv.set_memory_target(static_cast<int>(v->domid), after.memory_dynamic_max); !r)
        return fail(from_backend(r.error()));
      after.memory_target = after.memory_dynamic_max;
      d->record_host_memory(t, *s);
    }
    t.update(vm, *v, after);
    return d->commit(std::move(t));
  }));
}

vm_lifecycle::result_void vm_lifecycle::edit(const std::string& vm, std::function<api::status(api::vm&)> edit) {
  auto s = impl_->db.snapshot();
  const api::vm* v = s->get<api::vm>(vm);
  if (!v) return fail(api::errors::HANDLE_INVALID("VM", vm));
  api::vm after = *v;
  if (auto st = edit(after); !st) return st;
  auto t = impl_->db.begin();
  t.update(vm, *v, after);
  return as_void(impl_->commit(std::move(t)));
}

}  // namespace xapid::actors
