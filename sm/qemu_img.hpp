// qemu-img, run as a child process with its arguments (never a shell): the one place xapid
// makes and changes qcow2 images. Errors carry qemu-img's exit status and its messages, which
// is what SR_BACKEND_FAILURE reports.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace xapid::sm {

struct tool_failure {
  int status = 0;
  std::string out;
  std::string err;
};
template <class T>
using tool_result = result<T, tool_failure>;

// Runs `argv` (argv[0] looked up in PATH) and answers its standard output.
tool_result<std::string> run_tool(const std::vector<std::string>& argv);

struct image_info {
  std::int64_t virtual_size = 0;
  std::int64_t actual_size = 0;  // bytes the file occupies
  std::string format;            // "qcow2", "raw"
  std::string backing_file;      // as written in the image, "" when none
};

tool_result<image_info> image_info_of(const std::string& path);
// A qcow2 image of `size` bytes, or an overlay on `backing` (its size when size is 0).
tool_result<void> create_qcow2(const std::string& path, std::int64_t size, const std::string& backing = {});
tool_result<void> create_raw(const std::string& path, std::int64_t size);
// A whole copy as qcow2 (the chain flattened): VDI.copy, export.
tool_result<void> convert_to_qcow2(const std::string& from, const std::string& to);
// Makes `path` an overlay on `new_backing` ("" flattens it), copying what the old chain held.
tool_result<void> rebase(const std::string& path, const std::string& new_backing);
tool_result<void> resize(const std::string& path, std::int64_t size);

}  // namespace xapid::sm
