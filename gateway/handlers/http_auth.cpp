#include "gateway/handlers/http_auth.hpp"

#include <openssl/evp.h>

#include <thread>

#include "common/clock.hpp"

namespace xapid::gateway {

std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> query_pairs(const std::string& target) {
  std::vector<std::pair<std::string, std::string>> q;
  auto qm = target.find('?');
  if (qm == std::string::npos) return q;
  std::string_view rest(target);
  rest.remove_prefix(qm + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto part = rest.substr(0, amp);
    auto eq = part.find('=');
    q.emplace_back(url_decode(part.substr(0, eq)), eq == std::string_view::npos ? "" : url_decode(part.substr(eq + 1)));
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return q;
}

std::map<std::string, std::string> query_of(const std::string& target) {
  std::map<std::string, std::string> q;
  for (auto& [k, v] : query_pairs(target)) q[std::move(k)] = std::move(v);
  return q;
}

// The caller, from session_id or HTTP basic credentials (checked by the login guard, whose
// failures answer after its fixed delay); a local peer without either is root, as on the API
// socket.
api::api_result<caller> authorize(session_manager& sessions, login_guard& logins, http_stream& io,
                                  const std::map<std::string, std::string>& q) {
  if (auto s = q.find("session_id"); s != q.end()) return sessions.validate(s->second);
  const auto started = monotonic_now();
  std::string auth = io.header("Authorization");
  if (auth.rfind("Basic ", 0) == 0) {
    std::string encoded = auth.substr(6);
    std::string decoded(encoded.size(), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                            reinterpret_cast<const unsigned char*>(encoded.data()), static_cast<int>(encoded.size()));
    decoded.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
    while (!decoded.empty() && decoded.back() == '\0') decoded.pop_back();  // base64 padding
    auto colon = decoded.find(':');
    login_attempt attempt{colon == std::string::npos ? decoded : decoded.substr(0, colon),
                          colon == std::string::npos ? std::string() : decoded.substr(colon + 1), io.peer()};
    auto who = logins.authenticate(attempt);
    if (!who) {
      std::this_thread::sleep_for(logins.remaining_delay(started));  // this transfer's own thread
      return fail(who.error());
    }
    if (who->root) return caller{0, "", true};
    return caller{who->role, who->sid, false};
  }
  if (io.from_unix_socket()) return caller{0, "", true};
  return fail(api::errors::SESSION_AUTHENTICATION_FAILED());
}

void answer_error(http_stream& io, unsigned status, const api::api_error& e) {
  std::string body;
  for (const auto& part : e.description()) body += (body.empty() ? "" : " ") + part;
  body += "\n";
  if (io.send_head(status, "text/plain")) io.write(body.data(), body.size());
}

}  // namespace xapid::gateway
