#include "gateway/api/message_rpcs.hpp"

#include <algorithm>
#include <memory>
#include <optional>
#include <variant>

#include "gateway/rpc/typed_rpcs.hpp"
#include "storage/row_values.hpp"

namespace xapid::gateway {
namespace {

namespace m = api::method;
using storage::schema;

// --- xapi's filter expressions (its Db_filter grammar) ---
// expr := value "=" value | expr "and" expr | expr "or" expr | "not" expr | "true" | "false"
//       | "(" expr ")";  value := "\"text\"" | "field" "\"name\"".
// "and" and "or" bind alike, from the left; "not" takes everything to its right.

struct filter_value {
  bool field;
  std::string text;  // a literal, or a field's name
};
struct filter_node;
using filter_ptr = std::unique_ptr<filter_node>;
struct filter_node {
  enum class kind { truth, falsity, eq, and_, or_, not_ } what;
  filter_value left{}, right{};  // eq
  filter_ptr a, b;               // and, or (a, b); not (a)
};

constexpr std::size_t max_filter_bytes = 64 * 1024;
constexpr int max_filter_depth = 64;
// Each term is evaluated against every message (up to the log's 10,000): more would let one
// read-only call keep a core busy for seconds.
constexpr std::size_t max_filter_terms = 256;

class filter_parser {
 public:
  explicit filter_parser(std::string_view text) : text_(text) {}

  api::api_result<filter_ptr> parse() {
    auto e = expr(0);
    if (!e) return e;
    if (next_token() != token::end) return bad("text after the expression");
    return e;
  }

 private:
  enum class token { eq, truth, falsity, lparen, rparen, field, and_, or_, not_, text, end, error };

  api::api_error bad_error(std::string why) const {
    return api::errors::INVALID_VALUE("expr", "cannot read the expression (" + why + ") at byte " + std::to_string(at_));
  }
  api::api_result<filter_ptr> bad(std::string why) const { return fail(bad_error(std::move(why))); }

  token next_token() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n')) ++at_;
    if (at_ == text_.size()) return token::end;
    const char c = text_[at_];
    if (c == '=') return ++at_, token::eq;
    if (c == '(') return ++at_, token::lparen;
    if (c == ')') return ++at_, token::rparen;
    if (c == '"') {
      auto close = text_.find('"', at_ + 1);
      if (close == std::string_view::npos) return token::error;
      text_token_ = std::string(text_.substr(at_ + 1, close - at_ - 1));
      at_ = close + 1;
      return token::text;
    }
    for (auto [word, t] : {std::pair{"true", token::truth}, {"false", token::falsity}, {"field", token::field},
                           {"and", token::and_}, {"or", token::or_}, {"not", token::not_}})
      if (text_.substr(at_).starts_with(word)) {
        at_ += std::string_view(word).size();
        return t;
      }
    return token::error;
  }
  token peek() {
    const std::size_t at = at_;
    const token t = next_token();
    at_ = at;
    return t;
  }

  api::api_result<filter_value> value(token t) {
    if (t == token::text) return filter_value{false, text_token_};
    if (t == token::field && next_token() == token::text) return filter_value{true, text_token_};
    return fail(bad_error("a quoted text or field \"name\" expected"));
  }

  // A unary expression: "not" (all to its right), a parenthesis, true, false or a comparison.
  api::api_result<filter_ptr> unary(int depth) {
    if (depth > max_filter_depth) return bad("nested too deeply");
    if (++terms_ > max_filter_terms) return bad("more than " + std::to_string(max_filter_terms) + " terms");
    const token t = next_token();
    auto node = std::make_unique<filter_node>();
    switch (t) {
      case token::not_: {
        auto inner = expr(depth + 1);
        if (!inner) return inner;
        node->what = filter_node::kind::not_;
        node->a = std::move(*inner);
        return node;
      }
      case token::lparen: {
        auto inner = expr(depth + 1);
        if (!inner) return inner;
        if (next_token() != token::rparen) return bad("')' expected");
        return inner;
      }
      case token::truth: node->what = filter_node::kind::truth; return node;
      case token::falsity: node->what = filter_node::kind::falsity; return node;
      default: {
        auto left = value(t);
        if (!left) return fail(left.error());
        if (next_token() != token::eq) return bad("'=' expected");
        auto right = value(next_token());
        if (!right) return fail(right.error());
        node->what = filter_node::kind::eq;
        node->left = std::move(*left);
        node->right = std::move(*right);
        return node;
      }
    }
  }

  api::api_result<filter_ptr> expr(int depth) {
    auto left = unary(depth);
    if (!left) return left;
    for (token t = peek(); t == token::and_ || t == token::or_; t = peek()) {
      next_token();
      auto right = unary(depth + 1);
      if (!right) return right;
      auto node = std::make_unique<filter_node>();
      node->what = t == token::and_ ? filter_node::kind::and_ : filter_node::kind::or_;
      node->a = std::move(*left);
      node->b = std::move(*right);
      left = std::move(node);
    }
    return left;
  }

  std::string_view text_;
  std::size_t at_ = 0;
  std::size_t terms_ = 0;
  std::string text_token_;
};

// A message's field as the filter compares it (xapi's text of each), or nullopt for no such field.
std::optional<std::string> message_field(const api::message& msg, const std::string& name) {
  if (name == "name") return msg.name;
  if (name == "uuid") return msg.uuid;
  if (name == "priority") return std::to_string(msg.priority);
  if (name == "cls") return std::string(api::to_string(msg.cls));
  if (name == "obj_uuid") return msg.obj_uuid;
  if (name == "timestamp") return api::format_iso8601(msg.timestamp);
  if (name == "body") return msg.body;
  return std::nullopt;
}

// Every field a filter names is checked once, before any message is (an unknown one is an error
// even when no message would reach it).
api::status check_fields(const filter_node& n) {
  for (const filter_value* v : {&n.left, &n.right})
    if (n.what == filter_node::kind::eq && v->field && !message_field(api::message{}, v->text))
      return fail(api::errors::INVALID_VALUE("expr", "messages have no field " + v->text));
  if (n.a)
    if (auto st = check_fields(*n.a); !st) return st;
  if (n.b)
    if (auto st = check_fields(*n.b); !st) return st;
  return ok_v;
}

// A value's text for one message: a literal or a stored string as it is (a body may be 1 MiB:
// never copied), a field xapi shows as text made into `made`.
std::string_view text_of(const filter_value& v, const api::message& msg, std::string& made) {
  if (!v.field) return v.text;
  if (v.text == "name") return msg.name;
  if (v.text == "uuid") return msg.uuid;
  if (v.text == "obj_uuid") return msg.obj_uuid;
  if (v.text == "body") return msg.body;
  made = *message_field(msg, v.text);
  return made;
}

bool matches(const filter_node& n, const api::message& msg) {
  std::string left, right;
  switch (n.what) {
    case filter_node::kind::truth: return true;
    case filter_node::kind::falsity: return false;
    case filter_node::kind::eq: return text_of(n.left, msg, left) == text_of(n.right, msg, right);
    case filter_node::kind::and_: return matches(*n.a, msg) && matches(*n.b, msg);
    case filter_node::kind::or_: return matches(*n.a, msg) || matches(*n.b, msg);
    case filter_node::kind::not_: return !matches(*n.a, msg);
  }
  return false;
}

// The messages `keep` admits, newest first (as xapi lists them), as a map from ref to record.
template <class F>
wire::value messages_where(const storage::state& s, F keep) {
  const std::size_t cls = schema::get().class_of<api::message>();
  const auto& ts = schema::get().table(cls);
  std::vector<std::pair<const storage::row*, std::string>> found;
  s.for_each(cls, [&](const std::string& ref, const storage::row& r) {
    if (keep(*static_cast<const api::message*>(r.record.get()))) found.emplace_back(&r, ref);
    return true;
  });
  std::sort(found.begin(), found.end(), [](const auto& x, const auto& y) { return x.first->created > y.first->created; });
  wire::structure out;
  out.reserve(found.size());
  for (auto& [row, ref] : found) out.emplace_back(std::move(ref), storage::record_value(ts, row->record));
  return wire::value(std::move(out));
}

}  // namespace

void register_message_rpcs(dispatcher& d, storage::database& db, actors::message_log& messages) {
  constexpr bool blocking = true;
  add_typed<m::message_create>(d, [&db, &messages](call_context&, const std::string& name, std::int64_t priority, api::cls cls,
                                                   const std::string& obj_uuid, const std::string& body)
                                   -> api::api_result<api::ref<api::message>> {
    if (!actors::message_object_exists(*db.snapshot(), cls, obj_uuid))
      return fail(api::errors::UUID_INVALID(std::string(api::to_string(cls)), obj_uuid));
    auto ref = messages.create({name, priority, cls, obj_uuid, body});
    if (!ref) return fail(std::move(ref).error());
    return api::ref<api::message>{*ref};
  }, blocking);
  add_typed<m::message_get>(d, [&db](call_context&, api::cls cls, const std::string& obj_uuid, api::datetime since)
                                -> api::api_result<wire::value> {
    auto s = db.snapshot();
    if (!actors::message_object_exists(*s, cls, obj_uuid))
      return fail(api::errors::UUID_INVALID(std::string(api::to_string(cls)), obj_uuid));
    return messages_where(*s, [&](const api::message& msg) {
      return msg.cls == cls && msg.obj_uuid == obj_uuid && msg.timestamp > since;
    });
  }, blocking);
  add_typed<m::message_get_since>(d, [&db](call_context&, api::datetime since) -> api::api_result<wire::value> {
    return messages_where(*db.snapshot(), [&](const api::message& msg) { return msg.timestamp > since; });
  }, blocking);
  add_typed<m::message_get_all_records_where>(d, [&db](call_context&, const std::string& expr) -> api::api_result<wire::value> {
    if (expr.size() > max_filter_bytes)
      return fail(api::errors::INVALID_VALUE("expr", "longer than " + std::to_string(max_filter_bytes) + " bytes"));
    auto filter = filter_parser(expr).parse();
    if (!filter) return fail(std::move(filter).error());
    if (auto st = check_fields(**filter); !st) return fail(st.error());
    return messages_where(*db.snapshot(), [&](const api::message& msg) { return matches(**filter, msg); });
  }, blocking);
}

}  // namespace xapid::gateway
