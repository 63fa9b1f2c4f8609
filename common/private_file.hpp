// Small files only root may read (secrets, identities): written whole or not at all.
#pragma once

#include <optional>
#include <string>

namespace xapid {

// Writes `content` to a temporary file (0600) beside `path`, syncs it, renames it over `path`
// and syncs the directory: after a crash the file holds the old content or the new, never a mix.
bool write_private_file(const std::string& path, const std::string& content);

// The whole file, or nothing when it does not exist or cannot be read.
std::optional<std::string> read_whole_file(const std::string& path);

}  // namespace xapid
