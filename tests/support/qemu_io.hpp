// Guest data in a qcow2 image, written and checked with qemu-io as a guest would see it.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "sm/qemu_img.hpp"

namespace xapid::testing {

// Writes `byte` over [offset, offset+4 KiB) of the image.
inline void write_pattern(const std::string& path, int byte, std::int64_t offset) {
  auto r = sm::run_tool({"qemu-io", "-f", "qcow2", "-c",
                         "write -P " + std::to_string(byte) + " " + std::to_string(offset) + " 4k", path});
  ASSERT_TRUE(r.ok()) << r.error().err;
}

// Whether [offset, offset+4 KiB) of the image reads as `byte`.
inline bool reads_pattern(const std::string& path, int byte, std::int64_t offset) {
  auto r = sm::run_tool({"qemu-io", "-f", "qcow2", "-c",
                         "read -P " + std::to_string(byte) + " " + std::to_string(offset) + " 4k", path});
  return r.ok() && r->find("Pattern verification failed") == std::string::npos;
}

}  // namespace xapid::testing
