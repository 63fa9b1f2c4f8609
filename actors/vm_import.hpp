// VM import (seed 003 sections 3.5 and 5.1): the VM an XVA archive's ova.xml describes, made on
// this host all or nothing. The gateway streams the archive; this reads its metadata, says where
// each disk's bytes go (sparse raw files beside the target SR), then makes the disks' images and
// every record — VM, metrics, VDIs, VBDs, VIFs, networks — in one transaction, or leaves nothing.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "actors/object_actors.hpp"
#include "actors/storage_repos.hpp"
#include "common/clock.hpp"
#include "sm/xva_stream.hpp"
#include "storage/database.hpp"

namespace xapid::actors {

// ova.xml in XenServer's form: the VM, its VBDs, VDIs and their SRs, VIFs and networks, each
// with its record as exported, references rewritten to archive ids.
struct xva_object {
  std::string cls;  // "VM", "VBD", "VDI", "SR", "VIF", "network"
  std::string id;   // "Ref:N"
  wire::value snapshot;
};
struct xenserver_metadata {
  std::vector<xva_object> objects;
};

// ova.xml in the seed's legacy form (section 3.5.1): an <appliance> with one <vm> and its
// <vdi>s, each disk a directory of gzipped chunks in the archive.
struct legacy_metadata {
  struct disk {
    std::string name;  // <vdi name>, which the <vbd>s name
    std::int64_t size = -1;
    std::string source;  // the directory of its chunks
  };
  struct vbd {
    std::string vdi;  // a disk's name
    std::string device;
    bool bootable = false;
    bool read_only = false;
  };
  std::string name_label, name_description;
  std::int64_t memory_bytes = 0;
  std::int64_t vcpus = 1;
  bool hvm = false;
  std::string kernel_boot_cmdline;
  std::vector<disk> disks;
  std::vector<vbd> vbds;
};

using xva_metadata = std::variant<xenserver_metadata, legacy_metadata>;

// Reads an archive's ova.xml (IMPORT_ERROR when it is neither form). An archive of metadata
// alone is always XenServer's form.
api::api_result<xva_metadata> read_xva_metadata(const std::string& ova_xml, bool metadata_only);

struct import_options {
  bool metadata_only = false;  // no disks: the VM goes onto disks already here, found by their VDIs' uuids
  bool restore = false;        // VIFs keep their MAC addresses (else each gets a new one)
};

// A disk of the archive being received.
struct import_disk {
  std::string id;      // what the metadata calls it: its VDI's archive id, or a legacy <vdi name>
  std::string source;  // the directory of its chunks in the archive
  std::int64_t size = 0;
  sm::disk_in data;  // a sparse raw file beside the SR; it goes with the plan
};

// What an import receives and where it goes (vm_import::plan). A plan dropped uncommitted
// leaves nothing behind.
class import_plan {
 public:
  // The disks to receive (none for metadata alone).
  std::vector<import_disk>& disks() noexcept { return disks_; }
  // The disk whose chunks are the entries under `source`, or null.
  import_disk* disk_under(std::string_view source);
  // The error of a disk that could not be written because the SR filled up.
  api::api_error sr_full(const import_disk& disk) const;

 private:
  friend class vm_import;
  import_plan(xva_metadata metadata, std::string sr, std::string dir, bool restore)
      : metadata_(std::move(metadata)), sr_(std::move(sr)), dir_(std::move(dir)), restore_(restore) {}
  xva_metadata metadata_;
  std::string sr_, dir_;
  bool restore_ = false;
  std::map<std::string, std::string> existing_vdis_;  // archive id -> VDI ref (metadata alone)
  std::vector<import_disk> disks_;
};

class vm_import {
 public:
  vm_import(storage::database& db, storage_repos& repos, host_actors& actors, clock& clk)
      : db_(db), repos_(repos), actors_(actors), clk_(clk) {}

  // The SR an import writes to: `sr` or, when empty, the pool's default SR (DEFAULT_SR_NOT_FOUND);
  // this host must be able to make images in it.
  api::api_result<std::string> target_sr(const std::string& sr) const;
  // What to receive for `metadata` into `sr`: at most sm::max_import_disks disks of at most
  // sm::max_import_disk_bytes each (IMPORT_ERROR); with metadata alone, the disks already here
  // (IMPORT_ERROR_ATTACHED_DISKS_NOT_FOUND).
  api::api_result<import_plan> plan(xva_metadata metadata, const std::string& sr, const import_options& how);
  // Every disk received: the disks become qcow2 images in the SR, and the VM, its metrics,
  // disks and devices are made in one transaction; answers the new VM's ref. New uuids always;
  // VIFs join an existing network of the same bridge or name. The VM's vCPUs and memory must
  // pass its settings' rules (IMPORT_ERROR). A failure leaves no record and no image.
  api::api_result<std::string> commit(import_plan& plan);

 private:
  api::api_result<std::string> add_records(storage::transaction& t, const storage::state& s, import_plan& plan,
                                           const xenserver_metadata& m, std::vector<std::string>& made);
  api::api_result<std::string> add_records(storage::transaction& t, const storage::state& s, import_plan& plan,
                                           const legacy_metadata& m, std::vector<std::string>& made);
  // The received disk as the image of a new VDI of `fields` in the plan's SR.
  api::api_result<std::string> add_disk(storage::transaction& t, const storage::state& s, const import_plan& plan,
                                        import_disk& disk, api::vdi fields, std::vector<std::string>& made);
  std::string add_metrics(storage::transaction& t);

  storage::database& db_;
  storage_repos& repos_;
  host_actors& actors_;
  clock& clk_;
};

}  // namespace xapid::actors
