#include "gateway/http/http_head.hpp"

#include <boost/beast/http.hpp>

namespace xapid::gateway {

std::string response_head(unsigned status, std::string_view content_type, std::optional<std::size_t> length,
                          unsigned version, bool keep_alive, bool chunked) {
  namespace http = boost::beast::http;
  auto reason = http::obsolete_reason(static_cast<http::status>(status));
  std::string head;
  head.reserve(128);
  head.append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ").append(std::to_string(status)).append(" ");
  head.append(reason.data(), reason.size()).append("\r\nServer: xapid\r\n");
  if (!content_type.empty()) head.append("Content-Type: ").append(content_type).append("\r\n");
  if (length) head.append("Content-Length: ").append(std::to_string(*length)).append("\r\n");
  if (chunked) head.append("Transfer-Encoding: chunked\r\n");
  if (!keep_alive && version != 10) head.append("Connection: close\r\n");
  if (keep_alive && version == 10) head.append("Connection: keep-alive\r\n");
  return head.append("\r\n");
}

bool plain_header(std::string_view header, bool& ended_line) {
  if (header.empty()) return true;
  if (ended_line && (header[0] == ' ' || header[0] == '\t')) return false;
  for (auto i = header.find('\n'); i != std::string_view::npos && i + 1 < header.size(); i = header.find('\n', i + 1))
    if (header[i + 1] == ' ' || header[i + 1] == '\t') return false;
  ended_line = header.back() == '\n';
  return true;
}

}  // namespace xapid::gateway
