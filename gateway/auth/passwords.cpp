#include "gateway/auth/passwords.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/clock.hpp"
#include "common/ids.hpp"
#include "common/private_file.hpp"

#include <crypt.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <semaphore>
#include <sstream>
#include <thread>

namespace xapid::gateway {
namespace {

std::string read_file(const std::string& path, bool& found) {
  auto content = read_whole_file(path);
  found = content.has_value();
  return content.value_or(std::string());
}

std::string trim_newline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// A yescrypt hash takes ~20 ms of CPU and megabytes of memory. Logins run on threads of their
// own, so without a bound a crowd of them (a password-guessing client with many connections)
// would hash all at once: at most one per two CPUs does, the others wait their turn, so a storm
// of logins that must be hashed leaves half the CPUs to every other call.
std::string crypt_in_slot(const std::string& clear, const char* setting) {
  static std::counting_semaphore<> slots(std::max(1u, std::thread::hardware_concurrency() / 2));
  struct crypt_data data;
  std::memset(&data, 0, sizeof data);
  slots.acquire();
  const char* h = ::crypt_rn(clear.c_str(), setting, &data, sizeof data);  // throws nothing
  slots.release();
  return h ? std::string(h) : std::string();  // h points into `data`, still ours
}

}  // namespace

std::string hash_password(std::string_view clear) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  // yescrypt where libxcrypt has it, SHA-512 otherwise.
  if (!::crypt_gensalt_rn("$y$", 0, nullptr, 0, salt, sizeof salt) &&
      !::crypt_gensalt_rn("$6$", 0, nullptr, 0, salt, sizeof salt))
    return {};
  return crypt_in_slot(std::string(clear), salt);
}

bool verify_password(std::string_view clear, const std::string& hash) {
  if (hash.empty()) return false;
  const std::string h = crypt_in_slot(std::string(clear), hash.c_str());
  if (h.size() != hash.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < hash.size(); ++i) diff |= static_cast<unsigned char>(h[i] ^ hash[i]);
  return diff == 0;
}

result<root_credentials, std::string> load_or_create_root_password(const std::string& data_dir,
                                                                   const std::string& password_file,
                                                                   const std::string& given_password) {
  const std::string hash_path = data_dir + "/root-password.hash";
  bool found = false;
  std::string stored = trim_newline(read_file(hash_path, found));
  if (found && !stored.empty()) return root_credentials{stored, {}};

  root_credentials out;
  std::string clear;
  if (!password_file.empty()) {
    clear = trim_newline(read_file(password_file, found));
    if (!found) return fail("cannot read the root password file " + password_file);
    if (clear.empty()) return fail("the root password file " + password_file + " is empty");
  } else if (!given_password.empty()) {
    clear = given_password;
  } else {
    static constexpr char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    std::random_device rd;
    for (int i = 0; i < 20; ++i) clear.push_back(alphabet[rd() % (sizeof alphabet - 1)]);
    out.generated_file = data_dir + "/root-password";
    if (!write_private_file(out.generated_file, clear + "\n"))
      return fail("cannot write " + out.generated_file);
  }
  out.hash = hash_password(clear);
  if (out.hash.empty()) return fail(std::string("crypt(3) could not hash the root password"));
  if (!write_private_file(hash_path, out.hash + "\n")) return fail("cannot write " + hash_path);
  return out;
}

verified_credentials::verified_credentials(std::chrono::seconds ttl, std::size_t capacity)
    : ttl_(ttl), capacity_(capacity) {
  random_bytes(key_, sizeof key_);
}

std::string verified_credentials::digest(std::string_view scope, std::string_view user, std::string_view password) const {
  // Each part with its length first, so that no two (scope, user, password) read alike.
  std::string data;
  for (std::string_view part : {scope, user, password}) {
    data += std::to_string(part.size());
    data.push_back(':');
    data.append(part);
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ::HMAC(EVP_sha256(), key_, sizeof key_, reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  OPENSSL_cleanse(data.data(), data.size());
  return std::string(reinterpret_cast<const char*>(out), len);
}

bool verified_credentials::remembered(std::string_view scope, std::string_view user, std::string_view password) {
  const std::string d = digest(scope, user, password);
  const auto now = monotonic_now();
  std::lock_guard lock(mu_);
  auto it = until_.find(d);
  return it != until_.end() && it->second > now;
}

void verified_credentials::remember(std::string_view scope, std::string_view user, std::string_view password) {
  std::string d = digest(scope, user, password);
  const auto now = monotonic_now();
  const auto until = now + ttl_;
  std::lock_guard lock(mu_);
  // The oldest first: expired ones, then as many as keep the count within the capacity. An
  // entry remembered again is in `order_` twice; only the newest time counts.
  while (!order_.empty() && (order_.front().second <= now || until_.size() >= capacity_)) {
    auto it = until_.find(order_.front().first);
    if (it != until_.end() && it->second == order_.front().second) until_.erase(it);
    order_.pop_front();
  }
  until_[d] = until;
  order_.emplace_back(std::move(d), until);
}

void verified_credentials::forget_all() {
  std::lock_guard lock(mu_);
  until_.clear();
  order_.clear();
}

result<void, std::string> store_root_hash(const std::string& data_dir, const std::string& hash) {
  if (!write_private_file(data_dir + "/root-password.hash", hash + "\n"))
    return fail("cannot write " + data_dir + "/root-password.hash");
  return ok_v;
}

std::string current_root_hash(root_account& root, const storage::database& db) {
  if (auto pool_hash = db.private_value(root_hash_name)) return *pool_hash;
  std::lock_guard lock(root.mu);
  return root.hash;
}

}  // namespace xapid::gateway
