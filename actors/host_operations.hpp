// The host's own operations, beside the VM's (vm_lifecycle): enable and disable, the checks of
// shutdown and reboot (a disabled host with no guests running, as in xapi), and evacuation (its
// running guests migrated to the pool's other hosts; on a one-host pool a running VM has nowhere
// to go: NO_HOSTS_AVAILABLE). Shutdown, reboot and
// evacuate are operations of the host's actor, so they exclude each other; what the host allows
// follows `enabled`.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "actors/object_actors.hpp"
#include "storage/database.hpp"

namespace xapid::actors {

class host_operations {
 public:
  // `host` is this host's ref. Registers the host's operation rules with `actors`.
  host_operations(storage::database& db, host_actors& actors, std::string host);

  // At start: operations of this host's previous run are forgotten.
  api::status reset();

  using result_void = api::api_result<void>;
  // HANDLE_INVALID for no host, HOST_OFFLINE for another (the pool sends a host's calls to it).
  result_void assert_this_host(const std::string& host) const;
  result_void set_enabled(const std::string& host, bool enabled);
  // Admits and checks a shutdown or reboot under `task`; the caller then stops the daemon.
  result_void power_off(const std::string& host, bool reboot, const std::string& task);
  // Why each running guest cannot leave the host (the error's description per VM).
  api::api_result<api::map<api::ref<api::vm>, std::vector<std::string>>> vms_preventing_evacuation(
      const std::string& host) const;
  result_void assert_can_evacuate(const std::string& host) const;
  // Migrates every guest away by the evacuation plan (actors/placement), one after another;
  // CANNOT_EVACUATE_HOST("CODE,param,...|...") when a guest cannot leave (nothing moves then),
  // the first failed migration's error otherwise (the guests before it have moved).
  result_void evacuate(const std::string& host, const std::string& task);
  // The operator's statement that another host is powered off for good (xapi's declare_dead):
  // HOST_IS_LIVE for this host or one the pool sees live; else each of its guests is reset to
  // halted (VM.power_state_reset: startable elsewhere) and the host is disabled.
  result_void declare_dead(const std::string& host);

  // What evacuate and declare_dead do to a guest (vm_lifecycle's pool_migrate and
  // power_state_reset); until set, they refuse (NO_HOSTS_AVAILABLE, OPERATION_NOT_ALLOWED).
  struct guest_actions {
    std::function<result_void(const std::string& vm, const std::string& to)> migrate;
    std::function<result_void(const std::string& vm)> reset;
  };
  void set_guest_actions(guest_actions a) { guests_ = std::move(a); }

 private:
  api::map<api::ref<api::vm>, std::vector<std::string>> blockers() const;
  guest_actions guests_;

  storage::database& db_;
  host_actors& actors_;
  std::string host_;
  std::size_t host_cls_;
};

}  // namespace xapid::actors
