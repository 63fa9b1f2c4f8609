// The VM lifecycle of one host (seed Figure 1.1): every operation is admitted by the VM's actor
// (vm_rules decides), then drives the hypervisor backend and records the outcome in one
// transaction: power state, domid, residence, metrics, device attachment. VBD and VIF hotplug go
// through their own objects' actors the same way. Also: the guest's own stops (after-shutdown,
// after-reboot and after-crash actions) and the guest agent's reports, seen by `observe`.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "actors/object_actors.hpp"
#include "actors/storage_repos.hpp"
#include "common/clock.hpp"
#include "storage/database.hpp"
#include "xen/backend.hpp"

namespace xapid::actors {

// A VM record as a new, halted VM: no runtime state (domain, residence, metrics, guest
// metrics, suspend image), no devices (they are made anew and point at it), no operations.
api::vm as_new_vm(api::vm v);

class vm_lifecycle {
 public:
  // `host` is this host's ref. Registers the operation rules of VM, VBD and VIF with `actors`.
  vm_lifecycle(storage::database& db, xen::backend& hypervisor, host_actors& actors, storage_repos& repos, clock& clk,
               std::string host);

  // Where the guests' own crashes are told (VM_CRASHED); none until set.
  void set_message_log(message_log* messages);

  // At start: VMs, VBDs and VIFs get their operation rules; operations of a previous run are
  // forgotten; VMs resident here whose domain is gone are Halted, running domains are kept.
  api::status reconcile();
  // Notices what guests did on their own (shut down, rebooted, crashed) and what their agents
  // report; call it periodically.
  void observe();

  using result_void = api::api_result<void>;
  // `task` is the key the operation has in current_operations (the Async task, or a fresh ref).
  result_void start(const std::string& vm, bool paused, bool force, const std::string& task);
  result_void start_on(const std::string& vm, const std::string& host, bool paused, bool force, const std::string& task);
  result_void pause(const std::string& vm, const std::string& task);
  result_void unpause(const std::string& vm, const std::string& task);
  // The clean stops wait for the guest to acknowledge: `cancel` (task.cancel's flag for `task`,
  // or null) ends the wait, and the call fails TASK_CANCELLED [task] with the VM left running.
  using cancel_flag = std::shared_ptr<const std::atomic<bool>>;
  result_void clean_shutdown(const std::string& vm, const std::string& task, cancel_flag cancel = nullptr);
  result_void hard_shutdown(const std::string& vm, const std::string& task);
  result_void shutdown(const std::string& vm, const std::string& task, cancel_flag cancel = nullptr);
  result_void clean_reboot(const std::string& vm, const std::string& task, cancel_flag cancel = nullptr);
  result_void hard_reboot(const std::string& vm, const std::string& task);
  result_void suspend(const std::string& vm, const std::string& task);
  result_void resume(const std::string& vm, bool paused, bool force, const std::string& task);
  result_void resume_on(const std::string& vm, const std::string& host, bool paused, bool force, const std::string& task);
  // Live migration within the pool (VM.pool_migrate), on the host the VM runs on. The VM's new
  // host takes its part through `migration_peer` (the pool's peer service): `prepare` builds the
  // VM's domain there, paused; `finish` lets it run once the record names that host; `abort`
  // destroys it. The record moves in one commit, after the memory has been sent and before
  // this host's domain goes: the VM runs on exactly one host, or (its new host dead after the
  // commit) is recorded on that dead host. `cancel` ends the copy (TASK_CANCELLED, the VM
  // running here).
  struct migration_peer {
    std::function<api::api_result<int>(const std::string& vm)> prepare;
    std::function<api::status(const std::string& vm, int domid, bool paused)> finish;
    std::function<void(const std::string& vm, int domid)> abort;
  };
  // The peer for a host (none: it cannot be reached); until set, every migration is HOST_OFFLINE.
  void set_migration_peers(std::function<std::optional<migration_peer>(const std::string& host)> peers);
  result_void pool_migrate(const std::string& vm, const std::string& host, const std::string& task,
                           cancel_flag cancel = nullptr);
  // The receiving side, on the VM's new host: PREPARE, FINISH and ABORT of pool_peer.proto's
  // Migrate. A domain prepared and neither finished nor aborted within a minute is settled by
  // observe() from the record: run when it names this host with that domain, else destroyed.
  api::api_result<int> receive(const std::string& vm, const std::string& from);
  result_void finish_receive(const std::string& vm, int domid, bool paused);
  void abort_receive(const std::string& vm, int domid);
  api::api_result<std::string> clone(const std::string& vm, const std::string& name, const std::string& task);
  api::api_result<std::string> copy(const std::string& vm, const std::string& name, const std::string& sr,
                                    const std::string& task);
  api::api_result<std::string> snapshot(const std::string& vm, const std::string& name, const std::string& task);
  result_void revert(const std::string& snapshot, const std::string& task);
  result_void provision(const std::string& vm, const std::string& task);
  result_void destroy(const std::string& vm, const std::string& task);
  result_void set_memory_dynamic_range(const std::string& vm, std::int64_t min, std::int64_t max, const std::string& task);
  result_void set_VCPUs_number_live(const std::string& vm, std::int64_t n, const std::string& task);
  // A change of the VM's settings as operation `op` (changing_static_range, changing_VCPUs, ...):
  // `edit` changes a copy; memory must stay static_min <= dynamic_min <= dynamic_max <=
  // static_max and vCPUs 1 <= VCPUs_at_startup <= VCPUs_max (else INVALID_VALUE naming the
  // field); a running VM's new dynamic range becomes its balloon target.
  result_void change_settings(const std::string& vm, api::vm_operations op, std::function<api::status(api::vm&)> edit,
                              const std::string& task);
  // A change of fields no operation guards (order, delays, HA priority): one transaction.
  result_void edit(const std::string& vm, std::function<api::status(api::vm&)> edit);
  // A snapshot of a running VM with its memory: the snapshot is Suspended, the VM runs on.
  api::api_result<std::string> checkpoint(const std::string& vm, const std::string& name, const std::string& task);
  // The VM is Halted in the database, its domain being gone (refused while it exists).
  result_void power_state_reset(const std::string& vm, const std::string& task);
  result_void assert_operation_valid(const std::string& vm, api::vm_operations op) const;
  result_void update_allowed_operations(const std::string& vm);
  // Devices go only when detached (OPERATION_NOT_ALLOWED otherwise).
  result_void destroy_vbd(const std::string& vbd);
  result_void destroy_vif(const std::string& vif);
  api::api_result<std::vector<std::string>> allowed_VBD_devices(const std::string& vm) const;
  api::api_result<std::vector<std::string>> allowed_VIF_devices(const std::string& vm) const;
  result_void assert_can_boot_here(const std::string& vm, const std::string& host) const;
  api::api_result<std::vector<std::string>> possible_hosts(const std::string& vm) const;

  result_void vbd_plug(const std::string& vbd, const std::string& task);
  result_void vbd_unplug(const std::string& vbd, bool force, const std::string& task);
  result_void vbd_insert(const std::string& vbd, const std::string& vdi, const std::string& task);
  result_void vbd_eject(const std::string& vbd, const std::string& task);
  result_void vif_plug(const std::string& vif, const std::string& task);
  result_void vif_unplug(const std::string& vif, bool force, const std::string& task);

 private:
  result_void runs_here(const std::string& vm, const std::string& host) const;
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace xapid::actors
