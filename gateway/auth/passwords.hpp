// Local passwords: hashed with crypt(3) (yescrypt), compared in constant time, never stored clear.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

std::string hash_password(std::string_view clear);
bool verify_password(std::string_view clear, const std::string& hash);

// Successful password checks, remembered for a short while so that a client that logs in again
// and again with the same credentials (monitoring every few seconds, Xen Orchestra's
// reconnects) costs microseconds instead of a yescrypt hash or a PAM conversation. What is kept
// is a keyed digest (HMAC-SHA256 under a key drawn at start, never kept anywhere) of the scope,
// the user and the password — never the password. Only successes are kept: a wrong password
// always pays the full check and the failure delay. The scope is what the password was checked
// against (root's current hash, so a changed password forgets the old one at once; a PAM
// service), an entry lives at most `ttl`, and at most `capacity` are kept (the oldest go first).
class verified_credentials {
 public:
  explicit verified_credentials(std::chrono::seconds ttl = std::chrono::seconds(60), std::size_t capacity = 4096);
  bool remembered(std::string_view scope, std::string_view user, std::string_view password);
  void remember(std::string_view scope, std::string_view user, std::string_view password);
  void forget_all();

 private:
  std::string digest(std::string_view scope, std::string_view user, std::string_view password) const;
  std::chrono::seconds ttl_;
  std::size_t capacity_;
  unsigned char key_[32];
  std::mutex mu_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> until_;
  std::deque<std::pair<std::string, std::chrono::steady_clock::time_point>> order_;  // as remembered
};

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

// root's hash now: the pool's — a private value of the replicated database (`root_hash_name`),
// set by session.change_password through the pool's log, so every host has it once it is
// acknowledged and no failover can bring an older one back — else this host's own (its first
// boot's, or the pool's it took at join).
inline constexpr std::string_view root_hash_name = "root-password-hash";
std::string current_root_hash(root_account& root, const storage::database& db);

}  // namespace xapid::gateway
