// Disk images as files: sparse raw images that take no space until written, and copies that
// keep their holes. The local SR's VDIs are such files until the SR drivers (qcow2) land.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.hpp"

namespace xapid::sm {

// Creates `path` as a sparse image of `size_bytes`; fails if it exists.
result<void, std::string> create_image(const std::string& path, std::int64_t size_bytes);
// Copies `from` to `to` (which must not exist), data extents only, so holes stay holes.
result<void, std::string> copy_image(const std::string& from, const std::string& to);
// Removes the image; a missing one is not an error.
result<void, std::string> remove_image(const std::string& path);
// The bytes the image occupies on disk.
std::int64_t allocated_bytes(const std::string& path);

}  // namespace xapid::sm
