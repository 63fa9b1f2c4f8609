// The drivers of storage repositories, one per SR type (ext, file, nfs, iso), behind one
// interface as xen::backend is the hypervisor's: what each advertises as its SM object, where an
// SR's images are on a host, and how that directory is made reachable and let go. Code that
// handles SRs asks the SR's driver (find_driver) and never compares type names.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/container/flat_map.hpp>

#include "sm/qemu_img.hpp"

namespace xapid::sm {

// A device_config, or an SM object's configuration: the datamodel's api::map<std::string,
// std::string>, spelled here without the datamodel, which sm/ does not know.
using string_map = boost::container::flat_map<std::string, std::string>;

// What a driver's SM object says of it.
struct sm_description {
  std::string type;  // SR.type and SM.type: "ext"
  std::string name;
  std::string description;
  std::vector<std::string> capabilities;  // "VDI_CREATE", ...
  string_map configuration;               // the device_config keys it reads; "(required)" marks those it needs
  bool makes_vdis = true;                 // false: its VDIs are found by scan only (no create, clone, resize...)
};

// How the files of an SR's directory are VDIs.
enum class image_format {
  qcow2,  // images qemu-img reads (qcow2, raw, vhd), their sizes from qemu-img info
  iso,    // ISO files as they are: read-only VDIs as large as their files
};

// Whether SR.scan takes a file of this name for a VDI of that format.
bool is_image_name(image_format format, std::string_view file_name);

// The uuids of the SRs whose PBDs name `location` (SR.probe of a directory).
using srs_at_location = std::function<std::vector<std::string>(const std::string& location)>;

class sr_driver {
 public:
  virtual ~sr_driver() = default;

  virtual const sm_description& description() const = 0;
  const std::string& type() const { return description().type; }
  // Its SRs may be plugged on several hosts at once: their storage is not one host's own disk.
  virtual bool shared() const = 0;
  // xapid writes in its SRs' directories (images, suspend images, imports); an ISO library is
  // read-only.
  virtual bool writable() const = 0;
  virtual image_format images() const = 0;

  // SR.create: fills in what the client may leave out. `data_dir` is the daemon's, `uuid` the
  // new SR's.
  virtual void add_defaults(string_map& device_config, std::string& content_type, const std::string& data_dir,
                            const std::string& uuid) const {}
  // Where SR `uuid`'s images are on the host whose data dir is `data_dir`.
  virtual std::string directory(const std::string& data_dir, const std::string& uuid,
                                const string_map& device_config) const = 0;
  // Makes `dir` (directory()'s answer) reachable, the device_config's required keys being there.
  // `make_missing`: a directory the driver makes itself is made again if missing (SR.create,
  // PBD.plug); at a daemon's start a missing one is left for the caller to report.
  virtual tool_result<void> attach(const std::string& dir, const string_map& device_config,
                                   bool make_missing) const = 0;
  // Lets `dir` go once no PBD of this host has it plugged.
  virtual void detach(const std::string& dir) const {}
  // SR.probe: what `device_config` would find, as XML.
  virtual tool_result<std::string> probe(const string_map& device_config, const srs_at_location& known) const = 0;
};

// The driver of SR type `type`, or null when there is none.
const sr_driver* find_driver(std::string_view type);
// Every driver, in the order SR.get_supported_types answers them.
const std::vector<const sr_driver*>& all_drivers();

// The directory a device_config names (location), or DIR/sr/<uuid> without one: where the
// directory drivers (ext, file, iso) keep an SR's images.
std::string location_or_default(const std::string& data_dir, const std::string& uuid, const string_map& device_config);

}  // namespace xapid::sm
