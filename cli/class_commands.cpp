// <class>-list, -param-list, -param-get, -param-set, -param-add, -param-remove, -param-clear for
// every class of the catalog, as xapi's CLI makes them from its records: what each field may
// do follows from the RPCs the datamodel gives it (a setter, add_to/remove_from).
#include <algorithm>

#include "cli/commands.hpp"

namespace xapid::cli {
namespace {

struct object_field {
  std::string ref;
  wire::value record;
  const xe_field* field;
};

// The object of `uuid=` and its field named by `param-name=`.
xe_result<object_field> object_and_field(context& ctx, const xe_class& cls) {
  const std::string* name = ctx.param("param-name");
  const xe_field* f = name ? cls.find(*name) : nullptr;
  if (name && !f) return usage_error("Unknown field " + *name + " of class " + cls.name);
  auto ref = ctx.api.call(cls.wire("get_by_uuid"), {*ctx.param("uuid")});
  if (!ref) return fail(std::move(ref).error());
  auto record = ctx.api.call(cls.wire("get_record"), {*ref});
  if (!record) return fail(std::move(record).error());
  return object_field{text_of(*ref), std::move(*record), f};
}

xe_result<void> done(xe_result<wire::value> answer) {
  if (!answer) return fail(std::move(answer).error());
  return ok_v;
}

xe_result<void> list(context& ctx, const xe_class& cls) {
  // The fields asked for (params=a,b or all), else the class's defaults: shown in the record's
  // order whatever order they are named in, as xapi's xe does (--minimal shows the first).
  std::vector<std::string> wanted = cls.list_fields;
  if (const std::string* params = ctx.param("params")) {
    wanted = *params == "all" ? std::vector<std::string>{} : split(*params, ',');
    for (const auto& name : wanted)
      if (!cls.find(name)) return usage_error("Unknown field " + name + " of class " + cls.name);
  }
  std::vector<std::string> fields;
  for (const auto& f : cls.fields)
    if (wanted.empty() || std::find(wanted.begin(), wanted.end(), f.name) != wanted.end()) fields.push_back(f.name);
  auto everything = all_objects(ctx, cls);
  if (!everything) return fail(std::move(everything).error());
  auto filters = cls.default_filters;
  for (auto& f : filters_of(ctx.inv, cls, {}, nullptr)) filters.push_back(std::move(f));
  std::vector<object> chosen;
  for (auto& o : *everything) {
    auto wanted = passes(ctx, cls, o, filters);
    if (!wanted) return fail(std::move(wanted).error());
    if (*wanted) chosen.push_back(std::move(o));
  }
  print_objects(ctx, cls, chosen, fields);
  return ok_v;
}

xe_result<void> param_list(context& ctx, const xe_class& cls) {
  auto o = object_and_field(ctx, cls);
  if (!o) return fail(std::move(o).error());
  std::vector<std::string> fields;
  for (const auto& f : cls.fields) fields.push_back(f.name);
  print_objects(ctx, cls, {{o->ref, std::move(o->record)}}, fields);
  return ok_v;
}

xe_result<void> param_get(context& ctx, const xe_class& cls) {
  auto o = object_and_field(ctx, cls);
  if (!o) return fail(std::move(o).error());
  const wire::value& v = member_of(o->record, o->field->desc->name);
  if (const std::string* key = ctx.param("param-key"); key && o->field->is_map()) {
    if (auto* members = v.as_struct())
      for (const auto& [k, item] : *members)
        if (k == *key) return ctx.out += show_value(*o->field->shown().arg2, item, ctx.names) + "\n", ok_v;
    return local_error("Key " + *key + " not found in map");
  }
  ctx.out += show_value(o->field->shown(), v, ctx.names) + "\n";
  return ok_v;
}

// Sets `key` of a map field to `text`: with its own RPCs, the key is removed first when present
// (add_to refuses a key it has); with only a setter, the whole map is written back.
xe_result<void> set_in_map(context& ctx, const object_field& o, const xe_field& f, const std::string& key, const std::string& text) {
  auto value = parse_value(*f.desc->type->arg2, f.name + ":" + key, text, ctx.api);
  if (!value) return fail(std::move(value).error());
  const wire::value& current = member_of(o.record, f.desc->name);
  bool present = current.as_struct() && current.find(key);
  if (!f.add_to.empty()) {
    if (present && !f.remove_from.empty())
      if (auto removed = done(ctx.api.call(f.remove_from, {o.ref, key})); !removed) return removed;
    return done(ctx.api.call(f.add_to, {o.ref, key, std::move(*value)}));
  }
  if (f.setter.empty()) return local_error("Map field '" + f.name + "' is read-only.");
  wire::structure whole = current.as_struct() ? *current.as_struct() : wire::structure{};
  auto at = std::find_if(whole.begin(), whole.end(), [&](auto& m) { return m.first == key; });
  if (at != whole.end()) at->second = std::move(*value);
  else whole.emplace_back(key, std::move(*value));
  return done(ctx.api.call(f.setter, {o.ref, wire::value(std::move(whole))}));
}

xe_result<void> param_set(context& ctx, const xe_class& cls) {
  auto o = object_and_field(ctx, cls);
  if (!o) return fail(std::move(o).error());
  for (const auto& [name, text] : ctx.inv.params) {
    if (name == "uuid") continue;
    auto colon = name.find(':');
    const xe_field* f = cls.find(std::string_view(name).substr(0, colon));
    if (!f) return usage_error("Unknown parameter: " + name);
    if (colon != std::string::npos) {
      if (!f->is_map()) return usage_error("Field '" + f->name + "' is not a map.");
      if (auto set = set_in_map(ctx, *o, *f, name.substr(colon + 1), text); !set) return set;
      // Later keys of the same map see this one.
      auto record = ctx.api.call(cls.wire("get_record"), {o->ref});
      if (!record) return fail(std::move(record).error());
      o->record = std::move(*record);
      continue;
    }
    if (f->is_set() || f->is_map()) return usage_error("Field '" + f->name + "' is a map or set. use the 'name:key=value' syntax.");
    if (f->setter.empty()) return local_error("Field '" + f->name + "' is read-only.");
    auto value = parse_value(*f->desc->type, f->name, text, ctx.api);
    if (!value) return fail(std::move(value).error());
    if (auto set = done(ctx.api.call(f->setter, {o->ref, std::move(*value)})); !set) return set;
  }
  return ok_v;
}

xe_result<void> param_add(context& ctx, const xe_class& cls) {
  auto o = object_and_field(ctx, cls);
  if (!o) return fail(std::move(o).error());
  const xe_field& f = *o->field;
  if (f.is_set()) {
    const std::string* key = ctx.param("param-key");
    if (!key) return usage_error("When adding a key to a set, use the syntax: *-param-add param-name=<name> param-key=<key>");
    if (f.add_to.empty()) return local_error("Parameter is read-only");
    auto value = parse_value(*f.desc->type->arg1, f.name, *key, ctx.api);
    if (!value) return fail(std::move(value).error());
    return done(ctx.api.call(f.add_to, {o->ref, std::move(*value)}));
  }
  if (!f.is_map()) return local_error("Can only add to parameters of type Set or Map");
  if (f.add_to.empty() && f.setter.empty()) return local_error("Parameter is read-only");
  for (const auto& [key, text] : ctx.inv.params) {
    if (key == "uuid" || key == "param-name" || key == "param-key") continue;
    if (auto added = set_in_map(ctx, *o, f, key, text); !added) return added;
  }
  return ok_v;
}

xe_result<void> param_remove(context& ctx, const xe_class& cls) {
  auto o = object_and_field(ctx, cls);
  if (!o) return fail(std::move(o).error());
  const xe_field& f = *o->field;
  const std::string& key = *ctx.param("param-key");
  const wire::value& current = member_of(o->record, f.desc->name);
  if (!f.is_set() && !f.is_map()) return local_error("Can only remove from parameters of type Set or Map");
  if (f.remove_from.empty()) return local_error("Cannot remove parameters from read-only map");
  if (f.is_map()) {
    if (!current.find(key)) return local_error("Key " + key + " is not in map");
    return done(ctx.api.call(f.remove_from, {o->ref, key}));
  }
  auto value = parse_value(*f.desc->type->arg1, f.name, key, ctx.api);
  if (!value) return fail(std::move(value).error());
  bool present = current.as_array() && std::find(current.as_array()->begin(), current.as_array()->end(), *value) != current.as_array()->end();
  if (!present) return local_error("Key " + key + " is not in the set");
  return done(ctx.api.call(f.remove_from, {o->ref, std::move(*value)}));
}

xe_result<void> param_clear(context& ctx, const xe_class& cls) {
  auto o = object_and_field(ctx, cls);
  if (!o) return fail(std::move(o).error());
  const xe_field& f = *o->field;
  if (f.is_set() || f.is_map()) {
    if (!f.setter.empty()) return done(ctx.api.call(f.setter, {o->ref, f.is_set() ? wire::value(wire::array{}) : wire::value(wire::structure{})}));
    if (f.remove_from.empty()) return local_error("Can only clear RW parameters");
    const wire::value& current = member_of(o->record, f.desc->name);
    if (auto* items = current.as_array())
      for (const auto& item : *items)
        if (auto removed = done(ctx.api.call(f.remove_from, {o->ref, item})); !removed) return removed;
    if (auto* members = current.as_struct())
      for (const auto& [key, item] : *members)
        if (auto removed = done(ctx.api.call(f.remove_from, {o->ref, key})); !removed) return removed;
    return ok_v;
  }
  if (f.setter.empty()) return local_error("Can only clear RW parameters");
  auto empty = parse_value(*f.desc->type, f.name, "", ctx.api);
  if (!empty) return local_error("Cannot clear this parameter");
  return done(ctx.api.call(f.setter, {o->ref, std::move(*empty)}));
}

std::vector<std::string> names_where(const xe_class& cls, bool (*keep)(const xe_field&)) {
  std::vector<std::string> out;
  for (const auto& f : cls.fields)
    if (keep(f)) out.push_back(f.name);
  return out;
}

void add_for(const xe_class& cls, std::vector<command>& out) {
  auto run = [&cls](xe_result<void> (*what)(context&, const xe_class&)) {
    return [&cls, what](context& ctx) { return what(ctx, cls); };
  };
  const std::string plural = cls.name + "s";
  // Any field is a filter of -list (the class's selection, without a selector of its own).
  out.push_back({cls.name + "-list", "Lists all the " + plural + ", filtering on the optional arguments. To filter on map parameters, use the syntax 'map-param:key=value', on sets 'set-param:contains=value'.",
                 {}, {"params"}, &cls, {}, false, true, run(list)});
  out.push_back({cls.name + "-param-list", "Lists all the parameters of the object specified by the uuid.", {"uuid"}, {}, nullptr, {},
                 false, true, run(param_list)});
  out.push_back({cls.name + "-param-get", "Gets the parameter specified of the object. If the parameter is a map of key=value pairs, use 'param-key=<key>' to get the value associated with a particular key.",
                 {"uuid", "param-name"}, {"param-key"}, nullptr, {}, false, true, run(param_get)});
  auto settable = names_where(cls, [](const xe_field& f) { return !f.setter.empty() && !f.is_set() && !f.is_map(); });
  for (const auto& f : cls.fields)
    if (f.is_map() && (!f.add_to.empty() || !f.setter.empty())) settable.push_back(f.name + ":");
  if (!settable.empty())
    out.push_back({cls.name + "-param-set", "Sets the parameter specified. To set a (key,value) pair in a map parameter, use the syntax 'map-param:key=value'.",
                   {"uuid"}, settable, nullptr, {}, false, true, run(param_set)});
  auto addable = names_where(cls, [](const xe_field& f) { return (f.is_set() || f.is_map()) && (!f.add_to.empty() || (f.is_map() && !f.setter.empty())); });
  if (!addable.empty()) {
    out.push_back({cls.name + "-param-add", "Adds to a set or map parameter. If the parameter is a set, use param-key=<key to add>. If the parameter is a map, pass the values to add as 'key=value' pairs.",
                   {"uuid", "param-name"}, {"param-key"}, nullptr, {}, true, true, run(param_add)});
    out.push_back({cls.name + "-param-remove", "Removes a member or a key,value pair from a set/map respectively.",
                   {"uuid", "param-name", "param-key"}, {}, nullptr, {}, false, true, run(param_remove)});
  }
  auto clearable = names_where(cls, [](const xe_field& f) { return !f.setter.empty() || !f.remove_from.empty(); });
  if (!clearable.empty()) {
    std::string names;
    for (const auto& n : clearable) names += (names.empty() ? "" : ",") + n;
    out.push_back({cls.name + "-param-clear", "Clears the specified parameter (param-name can be " + names + ").",
                   {"uuid", "param-name"}, {}, nullptr, {}, false, true, run(param_clear)});
  }
}

}  // namespace

void add_class_commands(std::vector<command>& out) {
  for (const auto& cls : xe_classes()) add_for(cls, out);
}

}  // namespace xapid::cli
