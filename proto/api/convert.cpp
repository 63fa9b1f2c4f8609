#include <charconv>

#include "xapid/api/types.hpp"

namespace xapid::api {

std::string describe(const wire::value& v) {
  if (auto* s = v.as_string()) {
    constexpr std::size_t shown = 40;
    return s->size() <= shown ? *s : s->substr(0, shown) + "...";
  }
  return wire::kind_name(v.type());
}

api_error unmarshal_failure(std::string_view expected, const wire::value& received) {
  return errors::XMLRPC_UNMARSHAL_FAILURE(std::string(expected), describe(received));
}

api_error error_from_description(const std::vector<std::string>& description, api_error otherwise) {
  auto code = description.empty() ? std::nullopt : error_code_from_string(description.front());
  if (!code) return otherwise;
  return api_error{*code, std::vector<std::string>(description.begin() + 1, description.end())};
}

status from_value(const wire::value& v, std::string& out) {
  if (auto* s = v.as_string()) {
    out = *s;
    return ok_v;
  }
  return fail(unmarshal_failure("string", v));
}

namespace {
bool parse_int(std::string_view s, std::int64_t& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}
}  // namespace

status from_value(const wire::value& v, std::int64_t& out) {
  if (auto* i = v.as_int()) {
    out = *i;
    return ok_v;
  }
  if (auto* i = v.as_int32()) {
    out = i->v;
    return ok_v;
  }
  if (auto* s = v.as_string(); s && parse_int(*s, out)) return ok_v;
  return fail(unmarshal_failure("int", v));
}

status from_value(const wire::value& v, double& out) {
  if (auto* d = v.as_double()) {
    out = *d;
    return ok_v;
  }
  if (auto* i = v.as_int()) {
    out = static_cast<double>(*i);
    return ok_v;
  }
  if (auto* i = v.as_int32()) {
    out = i->v;
    return ok_v;
  }
  return fail(unmarshal_failure("float", v));
}

status from_value(const wire::value& v, bool& out) {
  if (auto* b = v.as_bool()) {
    out = *b;
    return ok_v;
  }
  return fail(unmarshal_failure("bool", v));
}

status from_value(const wire::value& v, datetime& out) {
  const std::string* text = nullptr;
  if (auto* d = v.as_datetime()) text = &d->iso8601;
  else text = v.as_string();  // JSON carries datetimes as strings
  if (text) {
    if (auto t = parse_iso8601(*text)) {
      out = *t;
      return ok_v;
    }
  }
  return fail(unmarshal_failure("datetime", v));
}

status key_from_string(std::string_view s, std::string& out) {
  out = std::string(s);
  return ok_v;
}

status key_from_string(std::string_view s, std::int64_t& out) {
  if (parse_int(s, out)) return ok_v;
  return fail(unmarshal_failure("int", wire::value(s)));
}

}  // namespace xapid::api
