#include "gateway/auth/logins.hpp"

#include <pwd.h>

#include <algorithm>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/clock.hpp"
#include "common/loggable.hpp"
#include "gateway/auth/external_auth.hpp"
#include "gateway/auth/passwords.hpp"

namespace xapid::gateway {
namespace {

using steady = std::chrono::steady_clock;

bool has_control_characters(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

// A user name the log may show: an account of this host (root included); anything else may be
// a password typed into the name field.
std::string loggable_user(const std::string& user) {
  if (user.empty() || user.size() > login_limits::max_user_bytes) return "(unknown)";
  struct passwd pw, *found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) return "(unknown)";
  return loggable(user);
}

// Counts kept for at most this many addresses and users; the quietest go first.
constexpr std::size_t max_tracked = 10000;
// Clients whose failures the hourly report names apart; more are counted together.
constexpr std::size_t max_reported_clients = 1000;

}  // namespace

login_guard::login_guard(storage::database& db, std::string this_host, root_account& root, login_limits limits)
    : db_(db), this_host_(std::move(this_host)), root_(root), limits_(limits) {}

void login_guard::refill(bucket& b, double burst, double rate, steady::time_point now) {
  const double elapsed = std::chrono::duration<double>(now - b.at).count();
  b.tokens = std::min(burst, b.tokens + elapsed * rate);
  b.at = now;
}

void login_guard::forget_old(std::map<std::string, bucket>& m, double burst, double rate, steady::time_point now) {
  if (m.size() < max_tracked) return;
  for (auto it = m.begin(); it != m.end();) {
    // Full again by now: nothing to remember.
    if (std::chrono::duration<double>(now - it->second.at).count() * rate + it->second.tokens >= burst)
      it = m.erase(it);
    else
      ++it;
  }
  if (m.size() >= max_tracked) m.erase(m.begin());
}

// An attempt is checked while its address, and its user at that address, have a failure left;
// only a failure spends one (so logins that succeed, however many at once, are never held up).
// Attempts already being checked may overdraw a bucket; it then takes longer to refill.
bool login_guard::admit(const login_attempt& a) {
  const auto now = monotonic_now();
  std::lock_guard lock(mu_);
  forget_old(by_address_, limits_.address_burst, limits_.address_per_second, now);
  forget_old(by_user_at_address_, limits_.user_burst, limits_.user_per_second, now);
  auto& address = by_address_.try_emplace(a.client, bucket{limits_.address_burst, now}).first->second;
  auto& user = by_user_at_address_.try_emplace(a.user + "@" + a.client, bucket{limits_.user_burst, now}).first->second;
  refill(address, limits_.address_burst, limits_.address_per_second, now);
  refill(user, limits_.user_burst, limits_.user_per_second, now);
  return address.tokens >= 1 && user.tokens >= 1;
}

void login_guard::spend(const login_attempt& a) {
  std::lock_guard lock(mu_);
  if (auto it = by_address_.find(a.client); it != by_address_.end())
    it->second.tokens = std::max(-limits_.address_burst, it->second.tokens - 1);
  if (auto it = by_user_at_address_.find(a.user + "@" + a.client); it != by_user_at_address_.end())
    it->second.tokens = std::max(-limits_.user_burst, it->second.tokens - 1);
}

api::api_result<login_identity> login_guard::authenticate(const login_attempt& a) {
  const char* why = nullptr;
  login_identity who;
  if (a.user.empty() || a.user.size() > login_limits::max_user_bytes || a.password.size() > login_limits::max_password_bytes ||
      has_control_characters(a.user) || has_control_characters(a.password)) {
    why = "malformed";  // refused before anything is kept of it
  } else if (!admit(a)) {
    why = "throttled";
  } else if (a.user == "root") {
    const std::string hash = current_root_hash(root_, db_);
    // Remembered only after a real check, for a fixed time: in use or not, it is checked again.
    if (verified_.remembered(hash, a.user, a.password)) {
      who.root = true;
    } else if (verify_password(a.password, hash)) {
      who.root = true;
      verified_.remember(hash, a.user, a.password);
    } else {
      why = "wrong password";
    }
  } else if (auto id = authenticate_external(db_, this_host_, a.user, a.password, &verified_)) {
    who.subject = id->subject;
    who.sid = id->sid;
    who.user = id->user;
    who.role = id->role_level;
  } else {
    why = "not accepted";
  }
  if (!why) return who;
  if (std::string_view(why) != "malformed" && std::string_view(why) != "throttled") spend(a);
  const std::string user = loggable_user(a.user);
  {
    std::lock_guard lock(mu_);
    ++failures_;
    auto key = std::pair{user, loggable(a.client)};
    if (auto it = failed_clients_.find(key); it != failed_clients_.end() || failed_clients_.size() < max_reported_clients) {
      auto& c = failed_clients_[key];
      ++c.count;
      c.last_seconds = wall_seconds();
    } else {
      ++failures_not_kept_apart_;
    }
  }
  spdlog::warn("session.login.failed user=\"{}\" client={} reason=\"{}\"", user, loggable(a.client), why);
  return fail(api::errors::SESSION_AUTHENTICATION_FAILED());
}

std::chrono::milliseconds login_guard::remaining_delay(steady::time_point started) const {
  auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(monotonic_now() - started);
  return spent >= limits_.failure_delay ? std::chrono::milliseconds(0) : limits_.failure_delay - spent;
}

login_guard::failure_report login_guard::take_failures() {
  std::map<std::pair<std::string, std::string>, client_failures> clients;
  failure_report out;
  std::uint64_t others = 0;
  {
    std::lock_guard lock(mu_);
    out.count = std::exchange(failures_, 0);
    clients.swap(failed_clients_);
    others = std::exchange(failures_not_kept_apart_, 0);
  }
  if (out.count == 0) return out;
  // xapi's form (xapi_session.ml): the three clients that failed most, then the rest unnamed.
  std::vector<std::pair<std::pair<std::string, std::string>, client_failures>> worst(clients.begin(), clients.end());
  std::stable_sort(worst.begin(), worst.end(), [](const auto& x, const auto& y) { return x.second.count > y.second.count; });
  if (worst.size() > 3) worst.resize(3);
  std::uint64_t known = 0;
  for (const auto& [key, c] : clients) known += c.count;
  std::string body = "<body>";
  if (!worst.empty()) {
    body += "\n<total>" + std::to_string(known) + "</total>";
    for (const auto& [key, c] : worst) {
      body += "\n<known>\n";
      if (key.first != "(unknown)") body += "<username>" + key.first + "</username>\n";
      body += "<ip>" + key.second + "</ip>\n<number>" + std::to_string(c.count) + "</number>\n<date>" +
              api::format_iso8601(api::datetime{c.last_seconds}) + "</date>\n</known>";
    }
  }
  if (others) body += "\n<unknown>" + std::to_string(others) + "</unknown>";
  out.body = body + "\n</body>";
  return out;
}

}  // namespace xapid::gateway
