// The SR drivers: ext, file and iso keep images in a directory of the host (ext's own under the
// data dir unless told otherwise); nfs mounts an export under the data dir and keeps them there.
#include "sm/sr_driver.hpp"

#include <cstdio>
#include <filesystem>

namespace xapid::sm {
namespace {

namespace fs = std::filesystem;

// What a driver whose VDIs are qcow2 images can do.
std::vector<std::string> qcow2_capabilities() {
  return {"SR_PROBE", "SR_UPDATE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "VDI_CLONE", "VDI_SNAPSHOT",
          "VDI_RESIZE", "VDI_RESIZE_ONLINE", "VDI_INTRODUCE", "VDI_UPDATE", "VDI_GENERATE_CONFIG"};
}

bool ends_with(std::string_view name, std::string_view suffix) {
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A driver whose SR is a directory device_config:location names. A probe lists the SRs known
// at the location: a directory is one SR.
class directory_driver : public sr_driver {
 public:
  explicit directory_driver(sm_description d) : description_(std::move(d)) {}
  const sm_description& description() const override { return description_; }
  std::string directory(const std::string& data_dir, const std::string& uuid,
                        const string_map& device_config) const override {
    return location_or_default(data_dir, uuid, device_config);
  }
  tool_result<void> attach(const std::string&, const string_map&, bool) const override { return ok_v; }
  tool_result<std::string> probe(const string_map& device_config, const srs_at_location& known) const override {
    auto location = device_config.find("location");
    if (location == device_config.end()) return fail(tool_failure{1, "", "device_config has no location"});
    std::error_code ec;
    if (!fs::is_directory(location->second, ec)) return fail(tool_failure{2, "", "no directory " + location->second});
    std::string xml = "<?xml version=\"1.0\" ?><SRlist>";
    for (const auto& uuid : known(location->second)) xml += "<SR><UUID>" + uuid + "</UUID></SR>";
    return xml + "</SRlist>";
  }

 private:
  sm_description description_;
};

class ext_driver final : public directory_driver {
 public:
  ext_driver()
      : directory_driver({"ext", "Local storage", "Disk images (qcow2) in a directory of the host's own disk",
                          qcow2_capabilities(), {{"location", "the directory (default: one under the data dir)"}}, true}) {}
  bool shared() const override { return false; }
  bool writable() const override { return true; }
  image_format images() const override { return image_format::qcow2; }
  void add_defaults(string_map& device_config, std::string&, const std::string& data_dir,
                    const std::string& uuid) const override {
    if (!device_config.count("location")) device_config["location"] = data_dir + "/sr/" + uuid;
  }
  tool_result<void> attach(const std::string& dir, const string_map&, bool make_missing) const override {
    std::error_code ec;
    if (make_missing) fs::create_directories(dir, ec);  // one that cannot be made is reported missing
    return ok_v;
  }
};

class file_driver final : public directory_driver {
 public:
  file_driver()
      : directory_driver({"file", "File-based storage",
                          "Disk images (qcow2) in a given directory; shared when every host sees it", qcow2_capabilities(),
                          {{"location", "the directory of the images (required)"}}, true}) {}
  bool shared() const override { return true; }
  bool writable() const override { return true; }
  image_format images() const override { return image_format::qcow2; }
};

class iso_driver final : public directory_driver {
 public:
  iso_driver()
      : directory_driver({"iso", "ISO library", "ISO images in a directory: read-only VDIs, found by scan",
                          {"SR_PROBE", "SR_UPDATE", "VDI_ATTACH", "VDI_DETACH", "VDI_INTRODUCE", "VDI_UPDATE"},
                          {{"location", "the directory of the ISO images (required)"}}, false}) {}
  bool shared() const override { return false; }
  bool writable() const override { return false; }
  image_format images() const override { return image_format::iso; }
  void add_defaults(string_map&, std::string& content_type, const std::string&, const std::string&) const override {
    if (content_type.empty()) content_type = "iso";
  }
};

bool is_mounted(const std::string& dir) {
  std::error_code ec;
  auto canonical = fs::weakly_canonical(dir, ec).string();
  FILE* f = std::fopen("/proc/self/mounts", "r");
  if (!f) return false;
  char line[4096];
  bool found = false;
  while (std::fgets(line, sizeof line, f)) {
    char src[2048], target[2048];
    if (std::sscanf(line, "%2047s %2047s", src, target) == 2 && canonical == target) found = true;
  }
  std::fclose(f);
  return found;
}

// An NFS export, mounted by each host under DIR/mnt/<uuid>; `soft` with one retry and a 30 s
// bound, so that a server gone away fails calls instead of hanging them.
class nfs_driver final : public sr_driver {
 public:
  const sm_description& description() const override { return description_; }
  bool shared() const override { return true; }
  bool writable() const override { return true; }
  image_format images() const override { return image_format::qcow2; }
  std::string directory(const std::string& data_dir, const std::string& uuid, const string_map&) const override {
    return data_dir + "/mnt/" + uuid;
  }
  tool_result<void> attach(const std::string& dir, const string_map& device_config, bool) const override {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (is_mounted(dir)) return ok_v;
    std::string options = "soft,timeo=50,retrans=1,retry=0";
    if (auto v = device_config.find("nfsversion"); v != device_config.end()) options += ",vers=" + v->second;
    auto r = run_tool({"timeout", "30", "mount", "-t", "nfs", "-o", options,
                       device_config.at("server") + ":" + device_config.at("serverpath"), dir});
    if (!r) {
      fs::remove(dir, ec);
      return fail(std::move(r).error());
    }
    return ok_v;
  }
  void detach(const std::string& dir) const override {
    if (is_mounted(dir)) (void)run_tool({"umount", dir});
    std::error_code ec;
    fs::remove(dir, ec);
  }
  tool_result<std::string> probe(const string_map& device_config, const srs_at_location&) const override {
    for (const char* key : {"server", "serverpath"})
      if (!device_config.count(key)) return fail(tool_failure{1, "", std::string("device_config has no ") + key});
    auto r = run_tool({"timeout", "30", "showmount", "-e", device_config.at("server")});
    if (!r) return fail(std::move(r).error());
    return "<?xml version=\"1.0\" ?><nfs-exports>" + *r + "</nfs-exports>";
  }

 private:
  const sm_description description_{"nfs",
                                     "NFS storage",
                                     "Disk images (qcow2) on an NFS export, mounted by each host",
                                     qcow2_capabilities(),
                                     {{"server", "the NFS server (required)"},
                                      {"serverpath", "the exported path (required)"},
                                      {"nfsversion", "3 or 4 (default: what mount chooses)"}},
                                     true};
};

}  // namespace

bool is_image_name(image_format format, std::string_view file_name) {
  if (format == image_format::iso) return ends_with(file_name, ".iso");
  return ends_with(file_name, ".qcow2") || ends_with(file_name, ".img") || ends_with(file_name, ".raw") ||
         ends_with(file_name, ".vhd");
}

std::string location_or_default(const std::string& data_dir, const std::string& uuid, const string_map& device_config) {
  auto it = device_config.find("location");
  if (it != device_config.end() && !it->second.empty()) return it->second;
  return data_dir + "/sr/" + uuid;
}

const std::vector<const sr_driver*>& all_drivers() {
  static const ext_driver ext;
  static const file_driver file;
  static const nfs_driver nfs;
  static const iso_driver iso;
  static const std::vector<const sr_driver*> drivers{&ext, &file, &nfs, &iso};
  return drivers;
}

const sr_driver* find_driver(std::string_view type) {
  for (const sr_driver* d : all_drivers())
    if (d->type() == type) return d;
  return nullptr;
}

}  // namespace xapid::sm
