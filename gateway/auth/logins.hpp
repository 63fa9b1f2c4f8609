// Logins: the one place that checks a user's password, for session.login_with_password and for
// the HTTP basic credentials of transfers. root is checked against its hash, other users by PAM
// and a subject (external_auth). A failure says nothing of why: names and passwords with control
// characters are refused before any check (PAM would read "root\0x" as "root"), every failed
// attempt is answered `failure_delay` after it began, and failures are counted per client
// address and per user at that address: past a burst, further attempts from there are refused
// without being checked until the count decays. (Not per user alone: guesses spread over many
// addresses would then lock root out everywhere.) Only failures count, so clients that log in
// often, or many at once, never notice. Failures are logged (event session.login.failed, naming the
// user only when it is an account here: a password typed as a name is not written down) and
// counted for an hourly summary. Names over 256 bytes and passwords over 4 KiB are refused
// before anything is kept of them.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "gateway/auth/passwords.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

struct login_attempt {
  std::string user;
  std::string password;
  std::string client;  // the peer's address, "local" for the unix socket
};

struct login_identity {
  bool root = false;
  std::string subject, sid, user;  // an external user's subject, its identifier, and name
  std::size_t role = static_cast<std::size_t>(-1);
};

struct login_limits {
  std::chrono::milliseconds failure_delay{2000};  // every failure answers this long after it began
  double address_burst = 10, address_per_second = 0.2;  // failures from one address
  double user_burst = 5, user_per_second = 0.1;         // failures against one user from one address
  static constexpr std::size_t max_user_bytes = 256, max_password_bytes = 4096;
};

class login_guard {
 public:
  login_guard(storage::database& db, std::string this_host, root_account& root, login_limits limits = {});

  // The caller's identity, or SESSION_AUTHENTICATION_FAILED (whatever the reason).
  api::api_result<login_identity> authenticate(const login_attempt& a);
  // How much longer a failure that began at `started` must wait before its answer.
  std::chrono::milliseconds remaining_delay(std::chrono::steady_clock::time_point started) const;
  // Failures since the last call, then counted afresh: how many, and xapi's body of its
  // FAILED_LOGIN_ATTEMPTS message (the total, the three clients that failed most: user when it
  // is an account here, address, count, last time; then those not kept apart).
  struct failure_report {
    std::uint64_t count = 0;
    std::string body;
  };
  failure_report take_failures();

 private:
  struct bucket {
    double tokens;
    std::chrono::steady_clock::time_point at;
  };
  static void refill(bucket& b, double burst, double rate, std::chrono::steady_clock::time_point now);
  bool admit(const login_attempt& a);
  void spend(const login_attempt& a);
  static void forget_old(std::map<std::string, bucket>& m, double burst, double rate,
                         std::chrono::steady_clock::time_point now);

  storage::database& db_;
  std::string this_host_;
  root_account& root_;
  login_limits limits_;
  std::mutex mu_;
  std::map<std::string, bucket> by_address_, by_user_at_address_;
  std::uint64_t failures_ = 0;
  struct client_failures {
    std::uint64_t count = 0;
    std::int64_t last_seconds = 0;
  };
  std::map<std::pair<std::string, std::string>, client_failures> failed_clients_;  // (user, address)
  std::uint64_t failures_not_kept_apart_ = 0;  // beyond the clients kept
  verified_credentials verified_;  // passwords that passed their check a moment ago
};

}  // namespace xapid::gateway
