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

}  // namespace xapid::sm
