// VM export (seed 003 sections 3.5 and 5.1): what an XVA archive of a VM holds, in XenServer's
// layout — ova.xml listing the VM, its VBDs, VDIs and their SRs, VIFs and networks (references
// rewritten to archive ids "Ref:N"), then each disk's guest data as chunks. The gateway streams
// the archive; this knows the records and where the disks are.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "actors/storage_repos.hpp"
#include "sm/xva_stream.hpp"
#include "storage/database.hpp"

namespace xapid::actors {

struct export_disk {
  std::string id;   // "Ref:N": the directory of its chunks in the archive
  std::string vdi;  // its VDI's ref
  std::int64_t size = 0;
};

struct export_contents {
  std::string ova_xml;
  std::vector<export_disk> disks;  // an ISO in a CD drive stays in its library
};

class vm_export {
 public:
  explicit vm_export(const storage_repos& repos) : repos_(repos) {}

  // The archive of `vm` as `s` has it; `hostname` (this host's) goes into its version.
  export_contents contents(const storage::state& s, const std::string& vm, const std::string& hostname) const;
  // The disk's guest data as chunks (sm::write_disk_chunks), read through a raw copy beside its
  // image; `progress` answers false to stop (the failure is then SR_BACKEND_FAILURE "cancelled").
  api::status write_disk(sm::tar_out& out, const storage::state& s, const export_disk& disk,
                         const std::function<bool(std::int64_t)>& progress) const;

 private:
  const storage_repos& repos_;
};

}  // namespace xapid::actors
