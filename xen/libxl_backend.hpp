// The backend of a real Xen host: each call is the libxenlight call xl would make (domains
// created paused, then unpaused; suspend to a file descriptor; hotplug through libxl's device
// functions); the guest agent's report is read from xenstore, where the PV tools write it.
// It needs a Xen control domain: open() fails elsewhere, and the daemon says so.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "xen/backend.hpp"

namespace xapid::xen {

class libxl_backend final : public backend {
 public:
  static result<std::unique_ptr<libxl_backend>, std::string> open();
  ~libxl_backend() override;

  host_info host() override;
  backend_result<int> create(const domain_config& config) override;
  backend_result<void> unpause(int domid) override;
  backend_result<void> pause(int domid) override;
  backend_result<void> shutdown(int domid, shutdown_reason reason, const std::atomic<bool>* cancelled) override;
  backend_result<void> destroy(int domid) override;
  backend_result<void> suspend(int domid, const std::string& path) override;
  backend_result<int> resume(const domain_config& config, const std::string& path) override;
  backend_result<std::int64_t> send_memory(int domid, const std::atomic<bool>* cancelled) override;
  backend_result<void> set_memory_target(int domid, std::int64_t bytes) override;
  backend_result<void> set_vcpus(int domid, int vcpus) override;
  std::vector<domain_info> list() override;
  backend_result<void> plug_disk(int domid, const disk& d) override;
  backend_result<void> unplug_disk(int domid, const std::string& device) override;
  backend_result<void> plug_nic(int domid, const nic& n) override;
  backend_result<void> unplug_nic(int domid, int index) override;
  std::optional<guest_report> guest(int domid) override;
  std::vector<domain_counters> read_domain_counters() override;
  host_counters read_host_counters() override;
  std::string dmesg() override;
  void stop_waiting() override;

 private:
  struct handles;
  explicit libxl_backend(std::unique_ptr<handles> h);
  std::unique_ptr<handles> h_;
  std::atomic<bool> stopping_{false};
};

}  // namespace xapid::xen
