// Files of disk images: copies that keep their holes (suspend images, which the hypervisor
// writes raw), removal, and the space a file takes. qcow2 images are sm/image_dir's.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.hpp"

namespace xapid::sm {

// Copies `from` to `to` (which must not exist), data extents only, so holes stay holes.
result<void, std::string> copy_image(const std::string& from, const std::string& to);
// Removes the image; a missing one is not an error.
result<void, std::string> remove_image(const std::string& path);
// The bytes the image occupies on disk.
std::int64_t allocated_bytes(const std::string& path);

// An image made for a transaction that has not committed carries a marker beside it
// (".pending-<name>", made before the image): after a crash, an image whose marker remains and
// that no record names is removed (image_dir::recover_pending), so a half-made VDI never
// becomes a disk that a scan adopts as the user's.
void mark_pending(const std::string& image_path);
void unmark_pending(const std::string& image_path);

}  // namespace xapid::sm
