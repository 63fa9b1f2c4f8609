// The disk images of a file-based SR: a directory of qcow2 files. A VDI is a leaf image named
// "<uuid>.qcow2"; snapshot and clone are copy-on-write: the VDI's content moves into a hidden
// read-only parent (".base-<uuid>.qcow2") on which the VDI and its copy are both overlays, so they
// cost nothing whatever the disk's size. collect() removes parents nobody needs and coalesces a
// parent with a single child into it, as SMAPI's garbage collector does.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "sm/qemu_img.hpp"

namespace xapid::sm {

class image_dir {
 public:
  explicit image_dir(std::string dir) : dir_(std::move(dir)) {}
  const std::string& path() const noexcept { return dir_; }
  std::string path_of(const std::string& location) const { return dir_ + "/" + location; }
  // Where VDI `uuid`'s own image is (create, clone and copy_to name it so).
  static std::string location_of(const std::string& uuid, std::string_view extension = ".qcow2") {
    return uuid + std::string(extension);
  }

  // A new empty image of `size` bytes for VDI `uuid`; answers its location.
  tool_result<std::string> create(const std::string& uuid, std::int64_t size) const;
  // The VDI at `location` keeps its name and content; answers the location of its copy `uuid`.
  tool_result<std::string> clone(const std::string& location, const std::string& uuid) const;
  // A whole, independent copy (the chain flattened) as VDI `uuid` in `to`.
  tool_result<std::string> copy_to(const std::string& location, const image_dir& to, const std::string& uuid) const;
  tool_result<void> resize(const std::string& location, std::int64_t size) const;
  tool_result<image_info> info(const std::string& location) const;
  // Removes the image of a VDI (collect() then tidies its parents).
  tool_result<void> remove(const std::string& location) const;

  // The images an SR scan considers: every file but hidden parents.
  std::vector<std::string> visible_files() const;
  // Parents no image needs go; a parent with one child is merged into it unless the child is in
  // `busy` (in use by a running guest). Answers how many parents went.
  std::size_t collect(const std::set<std::string>& busy) const;
  // After a crash: each image whose pending marker remains (see mark_pending) is removed unless
  // `recorded` names it, and the markers go. Answers the images removed.
  std::vector<std::string> recover_pending(const std::set<std::string>& recorded) const;

 private:
  std::string dir_;
};

}  // namespace xapid::sm
