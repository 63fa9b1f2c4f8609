// Local passwords: hashed with crypt(3) (yescrypt), compared in constant time, never stored clear.
#pragma once

#include <mutex>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace xapid::gateway {

std::string hash_password(std::string_view clear);
bool verify_password(std::string_view clear, const std::string& hash);

// root's password hash, as the daemon holds it (change_password replaces it).
struct root_account {
  std::string data_dir;  // where the hash is kept
  std::mutex mu;
  std::string hash;
};

// The root password of a host's first boot: from `password_file` if given, else
// `given_password` (the daemon's XAPID_ROOT_PASSWORD) if not empty, else generated and written
// once, clear, to DIR/root-password (0600).
// Only the hash is kept, in DIR/root-password.hash (0600). Later boots read the hash.
struct root_credentials {
  std::string hash;
  std::string generated_file;  // set when a password was generated on this boot
};
result<root_credentials, std::string> load_or_create_root_password(const std::string& data_dir,
                                                                   const std::string& password_file,
                                                                   const std::string& given_password);
// Replaces the stored hash (change_password), atomically.
result<void, std::string> store_root_hash(const std::string& data_dir, const std::string& hash);

}  // namespace xapid::gateway
