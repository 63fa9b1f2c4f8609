// The storage repositories of one host: the SR drivers (sm::sr_driver: ext, file, nfs, iso)
// advertised as SM objects, SR and PBD lifecycle, and VDIs as qcow2 images (sm::image_dir) whose
// sizes the API reports from the files. SR and VDI operations go through their objects' actors
// (allowed/current_operations); image changes in one SR directory are serialised, since clones
// rename files and collection rewrites chains.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/object_actors.hpp"
#include "common/clock.hpp"
#include "sm/qemu_img.hpp"
#include "storage/database.hpp"

namespace xapid::actors {

class storage_repos {
 public:
  // `host` is this host's ref; ext SRs live under DIR/sr/<uuid>, nfs mounts under DIR/mnt/<uuid>.
  storage_repos(storage::database& db, host_actors& actors, clock& clk, std::string host, std::string data_dir);
  ~storage_repos();

  // At start: an SM object per driver, the SR and VDI operation rules, operations of a previous
  // run forgotten, and this host's plugged PBDs attached again (nfs mounted).
  api::status start();

  // Where the SR's images are on this host (its PBD must be plugged here); `writing`: to make
  // images there, which a read-only SR (an ISO library) refuses with SR_OPERATION_NOT_SUPPORTED.
  api::api_result<std::string> directory(const storage::state& s, const std::string& sr, bool writing = false) const;
  api::api_result<std::string> vdi_path(const storage::state& s, const std::string& vdi) const;

  using ref_result = api::api_result<std::string>;
  using void_result = api::api_result<void>;

  ref_result sr_create(const std::string& host, api::map<std::string, std::string> device_config,
                       std::int64_t physical_size, const std::string& name_label, const std::string& name_description,
                       const std::string& type, const std::string& content_type, bool shared,
                       api::map<std::string, std::string> sm_config);
  ref_result sr_introduce(const std::string& uuid, const std::string& name_label, const std::string& name_description,
                          const std::string& type, const std::string& content_type, bool shared,
                          api::map<std::string, std::string> sm_config);
  void_result sr_forget(const std::string& sr, const std::string& task);
  // A shared SR reaches every host of the pool: a PBD (unplugged, with this host's
  // device_config) for each host that has none, in one commit; answers them as (host, PBD).
  api::api_result<std::vector<std::pair<std::string, std::string>>> add_pbds_everywhere(const std::string& sr);
  // The SR's PBD on this host ("" for none).
  std::string pbd_here(const std::string& sr) const;
  void_result sr_destroy(const std::string& sr, const std::string& task);
  void_result sr_scan(const std::string& sr, const std::string& task);
  void_result sr_update(const std::string& sr, const std::string& task);
  // The SRs the device_config would find, as xapi's probe XML (<SRlist>).
  ref_result sr_probe(const std::string& host, const api::map<std::string, std::string>& device_config,
                      const std::string& type);

  ref_result pbd_create(const std::string& host, const std::string& sr, api::map<std::string, std::string> device_config,
                        api::map<std::string, std::string> other_config);
  void_result pbd_plug(const std::string& pbd);
  // At start, after start() (which attaches again the PBDs recorded plugged), as xapi's: every
  // PBD of this host that is not plugged is plugged (a shared SR's PBD made when this host
  // joined); a failure is logged and leaves it unplugged. Answers how many were plugged.
  std::size_t plug_own_pbds();
  void_result pbd_unplug(const std::string& pbd);
  void_result pbd_destroy(const std::string& pbd);

  // VDI.create's record: the RW and RO-constructor fields a client gives.
  ref_result vdi_create(const std::string& sr, const std::string& name_label, const std::string& name_description,
                        std::int64_t virtual_size, api::vdi_type type, bool sharable, bool read_only,
                        api::map<std::string, std::string> other_config, api::map<std::string, std::string> sm_config,
                        const std::string& task);
  void_result vdi_destroy(const std::string& vdi, const std::string& task);
  void_result vdi_forget(const std::string& vdi, const std::string& task);
  void_result vdi_resize(const std::string& vdi, std::int64_t size, bool online, const std::string& task);
  void_result vdi_update(const std::string& vdi, const std::string& task);
  ref_result vdi_snapshot(const std::string& vdi, const std::string& task);
  ref_result vdi_clone(const std::string& vdi, const std::string& task);
  ref_result vdi_copy(const std::string& vdi, const std::string& sr, const std::string& task);
  ref_result vdi_introduce(api::vdi record);

  // For VM operations, inside their transaction `t`. Images are made at once; their paths go
  // to `made` so that the caller can drop them (and call collect) if its commit fails.
  enum class copy_kind { clone, snapshot, copy };
  ref_result add_vdi_copy(storage::transaction& t, const storage::state& s, const std::string& from, copy_kind kind,
                          const std::string& sr, std::vector<std::string>& made);
  // An empty disk: qcow2, or `raw` (sm_config type=raw, as xapi's: every byte where it seems —
  // HA's statefile, read and written in place by every host).
  ref_result add_new_vdi(storage::transaction& t, const storage::state& s, const std::string& sr, std::int64_t size,
                         const std::string& name_label, api::vdi_type type, api::map<std::string, std::string> other_config,
                         std::vector<std::string>& made, bool raw = false);
  // A new VDI of `fields` whose image `make` writes at the path it is given (an empty disk, a
  // disk an import received): the image is named after the VDI, which gets the image's sizes.
  using image_maker = std::function<sm::tool_result<void>(const std::string& path)>;
  ref_result add_vdi_from_image(storage::transaction& t, const storage::state& s, const std::string& sr,
                                api::vdi fields, const image_maker& make, std::vector<std::string>& made,
                                std::string_view extension = ".qcow2");
  // Drops images made for a transaction that did not commit, and tidies their SRs' chains.
  void drop(const std::vector<std::string>& made);
  // The images of a transaction that committed are the records' now: their pending markers go.
  void keep(const std::vector<std::string>& made);
  // Removes the image of a VDI whose record has gone, then tidies its SR's chains.
  void remove_image(const std::string& sr, const std::string& location);
  // Recomputes the SR's sizes from its files and its VDIs.
  void refresh_sizes(const std::string& sr);

 private:
  ref_result vdi_duplicate(const std::string& vdi, copy_kind kind, const std::string& sr, const char* op,
                           const std::string& task);
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace xapid::actors
