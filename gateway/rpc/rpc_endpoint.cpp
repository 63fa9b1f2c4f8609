#include "gateway/rpc/rpc_endpoint.hpp"

#include <optional>
#include <utility>

#include "proto/wire/jsonrpc.hpp"
#include "proto/wire/xmlrpc.hpp"

namespace xapid::gateway {
namespace {

// An answer's pieces as the HTTP server takes them. The first is made at once, on the thread
// that answers (the call pool's, for a whole table), the others when the server asks for them.
class answer_body final : public http_body_pieces {
 public:
  explicit answer_body(std::unique_ptr<wire::answer_pieces> answer)
      : answer_(std::move(answer)), first_(answer_->next()) {}
  std::string_view next() override {
    if (first_) return *std::exchange(first_, std::nullopt);
    return answer_->next();
  }
  bool finished() const override { return !first_ && answer_->finished(); }

 private:
  std::unique_ptr<wire::answer_pieces> answer_;
  std::optional<std::string_view> first_;  // not asked for yet
};

http_response answer(const char* content_type, std::unique_ptr<wire::answer_pieces> pieces,
                     std::chrono::milliseconds delay) {
  return {200, content_type, {}, delay, std::make_unique<answer_body>(std::move(pieces))};
}

}  // namespace

void serve_rpc(const dispatcher& d, const http_request& req, const http_server::responder& respond,
               const wire::limits& lim) {
  if (req.method != "POST") return respond({405, "text/plain", "only POST carries API calls\n"});
  std::string_view path = req.target;
  path = path.substr(0, path.find('?'));
  call_context ctx;
  ctx.from_unix_socket = req.from_unix_socket;
  ctx.client = req.peer;
  ctx.connection = req.connection;

  if (path == "/jsonrpc") {
    auto parsed = wire::jsonrpc::parse_request(req.body, lim);
    if (!parsed) {
      wire::jsonrpc::request unknown;
      return respond({200, "application/json",
                      wire::jsonrpc::write_error(unknown, parsed.error().code, parsed.error().message)});
    }
    wire::call c = std::move(parsed->c);
    return d.dispatch_async(std::move(c), std::move(ctx),
                            [respond, req = std::move(parsed).value()](wire::response r, call_context ctx) {
                              respond(answer("application/json", wire::jsonrpc::write_response_in_pieces(req, std::move(r)),
                                             ctx.answer_delay));
                            });
  }

  auto parsed = wire::xmlrpc::parse_call(req.body, lim);
  if (!parsed) return respond({200, "text/xml", wire::xmlrpc::write_fault(parsed.error().code, parsed.error().message)});
  d.dispatch_async(std::move(parsed).value(), std::move(ctx), [respond](wire::response r, call_context ctx) {
    respond(answer("text/xml", wire::xmlrpc::write_response_in_pieces(std::move(r)), ctx.answer_delay));
  });
}

}  // namespace xapid::gateway
