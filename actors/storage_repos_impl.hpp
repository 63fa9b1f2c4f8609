// Inside storage_repos, shared by the files that implement it by job: storage_repos.cpp (the
// start, where an SR's directory is, attaching it), sr_operations.cpp, pbd_operations.cpp,
// vdi_operations.cpp. Not for use outside actors/.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "actors/storage_repos.hpp"
#include "sm/qemu_img.hpp"
#include "sm/sr_driver.hpp"

namespace xapid::actors {

const std::string null_ref(api::null_ref_text);  // one per file (internal linkage)

inline api::api_error backend_failure(const sm::tool_failure& f) {
  return api::errors::SR_BACKEND_FAILURE(std::to_string(f.status), f.out, f.err);
}

struct storage_repos::impl {
  impl(storage::database& db_, host_actors& actors_, clock& clk_, std::string host_, std::string data_dir_)
      : db(db_), actors(actors_), clk(clk_), host(std::move(host_)), data_dir(std::move(data_dir_)) {}
  storage::database& db;
  host_actors& actors;
  clock& clk;
  std::string host;
  std::string data_dir;
  std::string data_dir_real = real_path(data_dir);
  static std::string real_path(const std::string& p);
  const std::size_t sr_cls = storage::schema::get().class_of<api::sr>();
  const std::size_t vdi_cls = storage::schema::get().class_of<api::vdi>();
  const std::size_t pbd_cls = storage::schema::get().class_of<api::pbd>();
  std::mutex locks_mu;
  std::map<std::string, std::shared_ptr<std::mutex>> dir_locks;  // by SR ref

  api::datetime now() const { return api::datetime{clk.now_ms() / 1000}; }

  // The lock of the SR's directory, held while its images change.
  std::shared_ptr<std::mutex> lock_of(const std::string& sr);
  api::api_result<wire::value> commit(storage::transaction t);

  // Where an SR's images may be. A client names the directory (device_config:location) and
  // xapid, as root, writes and deletes images in it; so it must be an absolute path without
  // `.` or `..` whose real path (symlinks followed) is not /, not a system directory nor in one,
  // not a top-level directory itself, not the data dir nor above it, and in the data dir only
  // DIR/sr/<the SR's uuid> (the default) or DIR/mnt/<uuid> (an nfs mount point).
  api::status check_location(const std::string& sr_uuid, const std::string& location) const;
  // The real path of the directory another SR of this host already uses there, if any: two SRs
  // never share a directory (each would scan, collect and delete the other's images).
  std::optional<std::string> sr_using(const storage::state& s, const std::string& sr_ref, const std::string& dir) const;
  // The directory SR `uuid`'s driver uses given its device_config.
  std::string directory_for(const std::string& type, const std::string& uuid,
                            const api::map<std::string, std::string>& device_config) const;
  // Makes the SR's directory reachable on this host: checks it, then its driver attaches it
  // (`make_missing`: see sm::sr_driver::attach).
  api::status attach(const std::string& sr_ref, const std::string& type, const std::string& uuid,
                     const api::map<std::string, std::string>& device_config, bool make_missing);
  void detach(const std::string& type, const std::string& uuid,
              const api::map<std::string, std::string>& device_config);
  // This host's PBD of the SR, or "".
  std::string pbd_here(const storage::state& s, const std::string& sr) const;
  api::api_result<std::string> directory(const storage::state& s, const std::string& sr, bool writing = false) const;
  // VDIs attached to running guests: their images are not rewritten by collection.
  std::set<std::string> busy_locations(const storage::state& s, const std::string& sr) const;
  void refresh_sizes(const std::string& sr);

  // Runs `work` as an operation of the object's actor.
  api::api_result<wire::value> run(std::size_t cls, const std::string& ref, const char* op, const std::string& task,
                                   std::function<api::api_result<wire::value>()> work) {
    return actors.run(cls, ref, op, task.empty() ? db.ids().opaque_ref() : task, std::move(work));
  }

  // `fields` as the record of a new managed VDI `uuid` whose qcow2 image is `location` in the SR.
  api::vdi new_vdi_record(api::vdi fields, const std::string& sr, const std::string& uuid,
                          const std::string& location) const;
  // Reads an image's sizes into its record.
  static void sizes_from(const sm::image_info& info, api::vdi& v) {
    v.virtual_size = info.virtual_size;
    v.physical_utilisation = info.actual_size;
  }
};

}  // namespace xapid::actors
