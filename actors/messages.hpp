// The pool's messages (alerts for the administrator: a VM started or crashed, failed logins)
// as rows of the `message` table, so they replicate with the pool database and reach event.from
// like any object. Their number is bounded as xapi bounds it: past `limit` (xapi's
// message_limit, 10,000) the oldest are destroyed, a batch at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "storage/database.hpp"

namespace xapid::actors {

struct alert {
  std::string name;        // "VM_STARTED"
  std::int64_t priority;   // xapi's: 1 most urgent .. 5 informational
  api::cls cls;
  std::string obj_uuid;
  std::string body;
};

// The messages xapid raises, with xapi's priorities (api_messages.ml).
namespace alerts {
inline constexpr std::pair<const char*, std::int64_t> VM_STARTED{"VM_STARTED", 5}, VM_SHUTDOWN{"VM_SHUTDOWN", 5},
    VM_REBOOTED{"VM_REBOOTED", 5}, VM_SUSPENDED{"VM_SUSPENDED", 5}, VM_RESUMED{"VM_RESUMED", 5},
    VM_PAUSED{"VM_PAUSED", 5}, VM_UNPAUSED{"VM_UNPAUSED", 5}, VM_CLONED{"VM_CLONED", 5},
    VM_SNAPSHOTTED{"VM_SNAPSHOTTED", 5}, VM_CHECKPOINTED{"VM_CHECKPOINTED", 5},
    VM_SNAPSHOT_REVERTED{"VM_SNAPSHOT_REVERTED", 5}, VM_CRASHED{"VM_CRASHED", 2},
    FAILED_LOGIN_ATTEMPTS{"FAILED_LOGIN_ATTEMPTS", 3}, VM_MIGRATED{"VM_MIGRATED", 5},
    POOL_MASTER_TRANSITION{"POOL_MASTER_TRANSITION", 4};
}  // namespace alerts

// Whether an object of class `cls` has uuid `uuid` (message.create and message.get check it).
bool message_object_exists(const storage::state& s, api::cls cls, const std::string& uuid);

class message_log {
 public:
  message_log(storage::database& db, clock& clk, std::size_t limit = 10000);

  // message.create: committed before it answers; the new message's ref. A name or body past
  // these is VALUE_NOT_SUPPORTED (the log is kept whole on every host).
  static constexpr std::size_t max_name_bytes = 256;
  static constexpr std::size_t max_body_bytes = 16 * 1024;
  api::api_result<std::string> create(const alert& a);
  // An alert of xapid's own: committed without waiting (a failure is logged, the operation that
  // raised it stands); a name or body past the bounds is cut to them.
  void raise(const alert& a);
  // The same for a VM: `what` follows "VM '<name>' (uuid: <uuid>) ", as xapi writes its bodies.
  void raise_for_vm(std::pair<const char*, std::int64_t> kind, const std::string& vm_ref, const std::string& what);
  // What bodies say of objects: "NAME (uuid: UUID)" of the host a VM runs on, and a VM's uuid and
  // name ("" when it is gone).
  std::string host_of_vm(const std::string& vm_ref) const;
  // "'NAME' (uuid: UUID)" of a host (VM_MIGRATED's form), and the host a VM runs on ("" none).
  std::string host_quoted(const std::string& host_ref) const;
  std::string resident_host(const std::string& vm_ref) const;
  std::string vm_uuid(const std::string& vm_ref) const;
  std::string vm_name(const std::string& vm_ref) const;
  std::string snapshot_of(const std::string& snapshot_ref) const;  // the VM a snapshot is of

  std::size_t limit() const noexcept { return limit_; }

 private:
  storage::transaction creation(const alert& a, std::string& ref);
  // Destroys the oldest messages down to `limit_` once there are a hundredth more (so that one
  // transaction removes many, not one per create).
  void trim();

  storage::database& db_;
  clock& clk_;
  std::size_t limit_;
  std::shared_ptr<std::atomic<bool>> trimming_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace xapid::actors
