#include "cli/commands.hpp"

#include <algorithm>
#include <cctype>

namespace xapid::cli {
namespace {

std::vector<command> make_commands() {
  std::vector<command> out;
  add_class_commands(out);
  add_operation_commands(out);
  add_vm_commands(out);
  add_misc_commands(out);
  std::sort(out.begin(), out.end(), [](const command& a, const command& b) { return a.name < b.name; });
  return out;
}

bool in(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// `name` is a filter on `cls`: a field, map-field:key, or set-field:contains.
bool names_field_filter(const xe_class& cls, std::string_view name) {
  if (cls.find(name)) return true;
  auto colon = name.find(':');
  if (colon == std::string_view::npos) return false;
  const xe_field* f = cls.find(name.substr(0, colon));
  return f && (f->is_map() || (f->is_set() && name.substr(colon + 1) == "contains"));
}

bool in_one_of(const command& c, std::string_view name) {
  return std::any_of(c.one_of.begin(), c.one_of.end(), [&](auto& group) { return in(group, name); });
}

bool allowed(const command& c, std::string_view name) {
  if (in(c.required, name) || in(c.optional, name) || in_one_of(c, name) || c.any_params) return true;
  auto colon = name.find(':');
  if (colon != std::string_view::npos && in(c.optional, name.substr(0, colon + 1))) return true;
  if (c.selects && ((!c.selector.empty() && name == c.selector) || names_field_filter(*c.selects, name))) return true;
  return false;
}

}  // namespace

const std::string* context::param(std::string_view name) const {
  for (const auto& [k, v] : inv.params)
    if (k == name) return &v;
  return nullptr;
}

std::string context::param_or(std::string_view name, std::string_view otherwise) const {
  const std::string* v = param(name);
  return v ? *v : std::string(otherwise);
}

const std::vector<command>& all_commands() {
  static const std::vector<command> commands = make_commands();
  return commands;
}

const command* find_command(std::string_view name) {
  const auto& all = all_commands();
  auto it = std::lower_bound(all.begin(), all.end(), name, [](const command& c, std::string_view n) { return c.name < n; });
  return it != all.end() && it->name == name ? &*it : nullptr;
}

xe_result<void> check_params(const command& c, const invocation& inv) {
  for (const auto& r : c.required)
    if (std::none_of(inv.params.begin(), inv.params.end(), [&](auto& p) { return p.first == r; }))
      return usage_error("Required parameter not found: " + r);
  for (const auto& group : c.one_of)
    if (std::none_of(inv.params.begin(), inv.params.end(), [&](auto& p) { return in(group, p.first); })) {
      std::string names;
      for (const auto& g : group) names += (names.empty() ? "" : " or ") + g;
      return usage_error("Required parameter not found: " + names);
    }
  for (const auto& [name, value] : inv.params)
    if (!allowed(c, name)) return usage_error("Unknown parameter: " + name);
  return ok_v;
}

std::string usage_of(const command& c) {
  std::string out = "usage: xe " + c.name;
  for (const auto& r : c.required) out += " " + r + "=<" + r + ">";
  for (const auto& group : c.one_of) {
    std::string alternatives;
    for (const auto& g : group) alternatives += (alternatives.empty() ? "" : " | ") + g + "=<" + g + ">";
    out += " (" + alternatives + ")";
  }
  if (c.selects && c.selector.empty()) out += " [<" + c.selects->name + " field>=<value> ...]";
  else if (c.selects) out += " [" + c.selector + "=<uuid or name-label> | <" + c.selects->name + " field>=<value> ...] [--multiple]";
  for (const auto& o : c.optional) out += o.ends_with(':') ? " [" + o + "<key>=<value>]" : " [" + o + "=<" + o + ">]";
  return out + "\n";
}

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> out;
  while (!text.empty()) {
    auto at = text.find(separator);
    out.emplace_back(text.substr(0, at));
    if (at == std::string_view::npos) break;
    text.remove_prefix(at + 1);
  }
  return out;
}

bool looks_like_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

xe_result<std::vector<object>> all_objects(context& ctx, const xe_class& cls) {
  auto records = ctx.api.call(cls.wire("get_all_records"), {});
  if (!records) return fail(std::move(records).error());
  std::vector<object> out;
  if (auto* rows = records->as_struct()) {
    out.reserve(rows->size());
    for (auto& [ref, record] : *rows) out.push_back({ref, std::move(record)});
  }
  return out;
}

xe_result<bool> passes(context& ctx, const xe_class& cls, const object& o,
                       const std::vector<std::pair<std::string, std::string>>& filters, std::string_view selector) {
  for (const auto& [name, wanted] : filters) {
    if (!selector.empty() && name == selector) {
      const wire::value& uuid = member_of(o.record, "uuid");
      const wire::value& label = member_of(o.record, "name_label");
      bool named = (uuid.as_string() && *uuid.as_string() == wanted) || (label.as_string() && *label.as_string() == wanted);
      if (!named) return false;
      continue;
    }
    auto colon = name.find(':');
    const xe_field* f = cls.find(colon == std::string::npos ? std::string_view(name) : std::string_view(name).substr(0, colon));
    if (!f) return usage_error("Unknown parameter: " + name);
    const wire::value& v = member_of(o.record, f->desc->name);
    if (colon == std::string::npos) {
      if (show_value(f->shown(), v, ctx.names) != wanted) return false;
      continue;
    }
    std::string key = name.substr(colon + 1);
    bool found = false;
    if (f->is_map()) {
      if (auto* members = v.as_struct())
        for (const auto& [k, item] : *members)
          if (k == key) found = show_value(*f->shown().arg2, item, ctx.names) == wanted;
    } else if (auto* items = v.as_array()) {
      for (const auto& item : *items) found = found || show_value(*f->shown().arg1, item, ctx.names) == wanted;
    }
    if (!found) return false;
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> filters_of(const invocation& inv, const xe_class& cls, std::string_view selector,
                                                            const command* own) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& p : inv.params) {
    if (own && (in(own->required, p.first) || in(own->optional, p.first) || in_one_of(*own, p.first))) continue;
    if (p.first == selector || names_field_filter(cls, p.first)) out.push_back(p);
  }
  return out;
}

xe_result<std::string> named_object(context& ctx, const xe_class& cls, std::string_view name_or_uuid) {
  if (looks_like_uuid(name_or_uuid)) {
    auto ref = ctx.api.call(cls.wire("get_by_uuid"), {std::string(name_or_uuid)});
    if (!ref) return fail(std::move(ref).error());
    return text_of(*ref);
  }
  auto refs = ctx.api.call(cls.wire("get_by_name_label"), {std::string(name_or_uuid)});
  if (!refs) return fail(std::move(refs).error());
  auto* list = refs->as_array();
  if (!list || list->empty()) return local_error("No " + cls.name + " is named " + std::string(name_or_uuid));
  if (list->size() > 1) return local_error("More than one " + cls.name + " is named " + std::string(name_or_uuid) + ": give its uuid");
  return text_of(list->front());
}

xe_result<std::vector<object>> selected_objects(context& ctx, const xe_class& cls, std::string_view selector) {
  auto filters = filters_of(ctx.inv, cls, selector, ctx.cmd);
  if (filters.empty() && !ctx.inv.multiple)
    return usage_error("Select the " + cls.name + " with " + std::string(selector) + "=<uuid or name-label>, uuid=, or field=value filters (with --multiple for several)");
  // One uuid alone is one object: no table to read.
  if (filters.size() == 1 && (filters[0].first == "uuid" || filters[0].first == selector) && looks_like_uuid(filters[0].second)) {
    auto ref = ctx.api.call(cls.wire("get_by_uuid"), {filters[0].second});
    if (!ref) return fail(std::move(ref).error());
    auto record = ctx.api.call(cls.wire("get_record"), {*ref});
    if (!record) return fail(std::move(record).error());
    std::vector<object> one{{text_of(*ref), std::move(*record)}};
    auto selectable = passes(ctx, cls, one.front(), cls.selected_by());
    if (!selectable) return fail(std::move(selectable).error());
    if (!*selectable) return local_error("No matching " + cls.name + " found");
    return one;
  }
  auto everything = all_objects(ctx, cls);
  if (!everything) return fail(std::move(everything).error());
  std::vector<object> chosen;
  for (auto& o : *everything) {
    auto by_default = passes(ctx, cls, o, cls.selected_by());
    if (!by_default) return fail(std::move(by_default).error());
    auto wanted = passes(ctx, cls, o, filters, selector);
    if (!wanted) return fail(std::move(wanted).error());
    if (*by_default && *wanted) chosen.push_back(std::move(o));
  }
  if (chosen.empty()) return local_error("No matching " + cls.name + " found");
  if (chosen.size() > 1 && !ctx.inv.multiple)
    return local_error(std::to_string(chosen.size()) + " objects of class " + cls.name + " match: use --multiple to act on them all");
  return chosen;
}

void print_objects(context& ctx, const xe_class& cls, const std::vector<object>& objects, const std::vector<std::string>& fields) {
  std::vector<printed_record> printed;
  printed.reserve(objects.size());
  for (const auto& o : objects) {
    printed_record r;
    for (const auto& name : fields)
      if (const xe_field* f = cls.find(name))
        r.emplace_back(f->name + " (" + f->tag() + ")", show_value(f->shown(), member_of(o.record, f->desc->name), ctx.names));
    printed.push_back(std::move(r));
  }
  if (ctx.inv.minimal) append_minimal(ctx.out, printed);
  else append_records(ctx.out, printed);
}

}  // namespace xapid::cli
