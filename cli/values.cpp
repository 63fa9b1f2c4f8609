#include "cli/values.hpp"

#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>

namespace xapid::cli {
namespace {

const wire::value nil;

std::string show_scalar(const wire::value& v) {
  if (auto* s = v.as_string()) return *s;
  if (auto* i = v.as_int()) return std::to_string(*i);
  if (auto* i = v.as_int32()) return std::to_string(i->v);
  if (auto* b = v.as_bool()) return *b ? "true" : "false";
  if (auto* d = v.as_double()) {
    char text[32];
    auto end = std::to_chars(text, text + sizeof text, *d).ptr;
    return std::string(text, end);
  }
  if (auto* t = v.as_datetime()) return t->iso8601;
  return "";
}

void append_joined(std::string& out, std::string_view piece, bool& first) {
  if (!first) out += "; ";
  out += piece;
  first = false;
}

std::string show_raw(const api::type_desc& type, const wire::value& v, ref_names& names);

}  // namespace

std::string terminal_safe(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
      continue;
    }
    // UTF-8 of U+0080..U+009F (C1 controls: CSI is U+009B), and of U+200E, U+200F,
    // U+202A..U+202E, U+2066..U+2069 (marks, embeddings, overrides, isolates).
    unsigned code = 0;
    std::size_t length = 0;
    if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      code = static_cast<unsigned char>(text[i + 1]);
      length = 2;
    } else if (c == 0xe2 && i + 2 < text.size()) {
      const auto b1 = static_cast<unsigned char>(text[i + 1]), b2 = static_cast<unsigned char>(text[i + 2]);
      const unsigned u = 0x2000u | (b1 & 0x3fu) << 6 | (b2 & 0x3fu);
      if (u == 0x200e || u == 0x200f || (u >= 0x202a && u <= 0x202e) || (u >= 0x2066 && u <= 0x2069)) {
        code = u;
        length = 3;
      }
    }
    if (length) {
      out += "\\u";
      for (int shift = 12; shift >= 0; shift -= 4) out += hex[(code >> shift) & 15];
      i += length - 1;
      continue;
    }
    out += static_cast<char>(c);
  }
  return out;
}

std::string show_value(const api::type_desc& type, const wire::value& v, ref_names& names) {
  return terminal_safe(show_raw(type, v, names));
}

std::string ref_names::uuid_of(std::string_view class_name, const std::string& ref) {
  if (ref.empty() || ref == "OpaqueRef:NULL") return std::string(not_in_database);
  if (auto known = uuids_.find(ref); known != uuids_.end()) return known->second;
  auto uuid = api_.call(std::string(class_name) + ".get_uuid", {ref});
  std::string text = uuid && uuid->as_string() ? *uuid->as_string() : std::string(not_in_database);
  uuids_.emplace(ref, text);
  return text;
}

namespace {

std::string show_raw(const api::type_desc& type, const wire::value& v, ref_names& names) {
  switch (type.kind) {
    case api::type_kind::ref:
      return names.uuid_of(type.name, show_scalar(v));
    case api::type_kind::set: {
      std::string out;
      bool first = true;
      if (auto* items = v.as_array())
        for (const auto& item : *items) append_joined(out, show_raw(*type.arg1, item, names), first);
      return out;
    }
    case api::type_kind::map:
    case api::type_kind::record: {
      std::string out;
      bool first = true;
      if (auto* members = v.as_struct())
        for (const auto& [key, value] : *members) {
          std::string shown_key = type.kind == api::type_kind::map && type.arg1->kind == api::type_kind::ref
                                      ? names.uuid_of(type.arg1->name, key)
                                      : key;
          std::string shown_value = type.kind == api::type_kind::map ? show_raw(*type.arg2, value, names) : show_scalar(value);
          append_joined(out, shown_key + ": " + shown_value, first);
        }
      return out;
    }
    case api::type_kind::enum_: {
      // xe prints a VM's power state in lower case (halted, running), its other enums as sent.
      std::string text = show_scalar(v);
      if (type.name == "vm_power_state")
        for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return text;
    }
    default:
      return show_scalar(v);
  }
}

}  // namespace

void append_records(std::string& out, const std::vector<printed_record>& records) {
  for (const auto& record : records) {
    std::size_t width = 0;
    for (const auto& [name, value] : record) width = std::max(width, name.size());
    width += 4;
    bool first = true;
    for (const auto& [name, value] : record) {
      // The first name is padded on its right, the others on their left, all to one width.
      if (first) out += name, out.append(width - name.size(), ' ');
      else out.append(width - name.size(), ' '), out += name;
      out += ": ";
      out += value;
      out += '\n';
      first = false;
    }
    out += '\n';
  }
}

void append_minimal(std::string& out, const std::vector<printed_record>& records) {
  bool first = true;
  for (const auto& record : records) {
    if (record.empty()) continue;
    if (!first) out += ',';
    first = false;
    for (char c : record.front().second) {
      if (c == ',' || c == '\\') out += '\\';
      out += c;
    }
  }
  out += '\n';
}

xe_result<wire::value> parse_value(const api::type_desc& type, std::string_view field_name, std::string_view text,
                                   api_client& api) {
  std::string name(field_name);
  switch (type.kind) {
    case api::type_kind::int_: {
      // Sizes may carry xe's binary suffixes: 10GiB.
      std::int64_t i = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), i);
      std::string_view suffix(end, text.data() + text.size() - end);
      int shift = suffix.empty() ? 0 : suffix == "KiB" ? 10 : suffix == "MiB" ? 20 : suffix == "GiB" ? 30 : suffix == "TiB" ? 40 : -1;
      if (ec != std::errc() || text.empty() || shift < 0 || (shift && (i < 0 || i > (INT64_MAX >> shift))))
        return usage_error("Parameter " + name + " must be an integer");
      return wire::value(i << shift);
    }
    case api::type_kind::float_: {
      double d = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
      if (ec != std::errc() || end != text.data() + text.size() || text.empty())
        return usage_error("Parameter " + name + " must be a floating-point number");
      return wire::value(d);
    }
    case api::type_kind::bool_:
      if (text == "true" || text == "yes" || text == "on") return wire::value(true);
      if (text == "false" || text == "no" || text == "off") return wire::value(false);
      return usage_error("Parameter " + name + " must be a boolean (true or false)");
    case api::type_kind::datetime:
      return wire::value(wire::datetime{std::string(text)});
    case api::type_kind::ref: {
      if (text.empty() || text == not_in_database || text == "OpaqueRef:NULL") return wire::value("OpaqueRef:NULL");
      if (text.starts_with("OpaqueRef:")) return wire::value(text);
      return api.call(std::string(type.name) + ".get_by_uuid", {std::string(text)});
    }
    case api::type_kind::string:
    case api::type_kind::enum_:
      return wire::value(text);
    default:
      return usage_error("Parameter " + name + " is a set or a map: use " + name + ":key=value, or the param-add and param-remove commands");
  }
}

std::string text_of(const wire::value& v) {
  const std::string* s = v.as_string();
  return s ? *s : std::string();
}

const wire::value& member_of(const wire::value& record, std::string_view name) {
  const wire::value* v = record.find(name);
  return v ? *v : nil;
}

}  // namespace xapid::cli
