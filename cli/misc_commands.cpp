// help; event-wait, which blocks until an object of a class meets every condition; subject-add.
#include <algorithm>

#include "cli/commands.hpp"

namespace xapid::cli {
namespace {

// What `xe help` lists, as xapi's xe calls its standard commands.
constexpr std::string_view common_commands[] = {
    "vm-list", "vm-param-list", "vm-install", "vm-start", "vm-shutdown", "vm-reboot", "vm-clone", "vm-uninstall",
    "vm-disk-list", "template-list", "host-list", "sr-list", "sr-create", "vdi-list", "vdi-create", "network-list",
    "network-create", "pool-list", "pool-join", "task-list", "event-wait", "help"};

xe_result<void> help(context& ctx) {
  std::vector<std::string_view> names;
  for (const auto& [name, value] : ctx.inv.params)
    if (value.empty()) names.push_back(name);  // `xe help vm-start`: the command's name, with no value
  if (!names.empty()) {
    for (auto name : names) {
      const command* c = find_command(name);
      if (!c) return usage_error("Unknown command: " + std::string(name));
      ctx.out += c->name + ": " + c->help + "\n" + usage_of(*c);
    }
    return ok_v;
  }
  ctx.out += "Usage: xe [-s server] [-p port] [-u user] [-pw password | -pwf password-file] [--nossl] [--socket path]\n"
             "          [--cert file] [--xmlrpc] <command> [name=value ...] [--minimal] [--force] [--multiple]\n";
  if (ctx.inv.all) {
    ctx.out += "All commands:\n";
    for (const auto& c : all_commands()) ctx.out += "  " + c.name + "\n";
  } else {
    ctx.out += "Common commands (xe help --all lists every one, xe help <command> tells of one):\n";
    for (auto name : common_commands) ctx.out += "  " + std::string(name) + "\n";
  }
  return ok_v;
}

xe_result<void> event_wait(context& ctx) {
  const xe_class* cls = find_xe_class(*ctx.param("class"));
  if (!cls) return usage_error("Unknown class: " + *ctx.param("class"));
  // field=value waits for that value; field=/=value, as xe documents it, for any other.
  std::vector<std::pair<std::string, std::string>> conditions, unwanted;
  for (const auto& p : ctx.inv.params)
    if (p.first == "class") continue;
    else if (p.second.starts_with("/=")) unwanted.emplace_back(p.first, p.second.substr(2));
    else conditions.push_back(p);
  for (const auto& [name, value] : ctx.inv.params) {
    if (name == "class") continue;
    auto colon = name.find(':');
    if (!cls->find(std::string_view(name).substr(0, colon))) return usage_error("Unknown field " + name + " of class " + cls->name);
  }
  std::string token;
  for (;;) {
    auto answer = ctx.api.call("event.from", {wire::array{std::string(cls->desc->name)}, token, 30.0});
    if (!answer) return fail(std::move(answer).error());
    if (const std::string* next = member_of(*answer, "token").as_string()) token = *next;
    if (auto* events = member_of(*answer, "events").as_array())
      for (const auto& e : *events) {
        const wire::value& snapshot = member_of(e, "snapshot");
        if (!snapshot.as_struct()) continue;
        object o{text_of(member_of(e, "ref")), snapshot};
        auto met = passes(ctx, *cls, o, cls->default_filters);
        if (met && *met) met = passes(ctx, *cls, o, conditions);
        for (const auto& condition : unwanted) {
          if (!met || !*met) break;
          auto same = passes(ctx, *cls, o, {condition});
          met = same ? xe_result<bool>(!*same) : std::move(same);
        }
        if (!met) return fail(std::move(met).error());
        if (*met) return ok_v;
      }
  }
}

// subject-add: a subject for a user of the external authentication, found by its name through
// auth.get_subject_identifier as xapi's xe does, or named by its subject-identifier directly.
xe_result<void> subject_add(context& ctx) {
  std::string sid;
  wire::structure info;
  if (const std::string* given = ctx.param("subject-identifier")) {
    sid = *given;
  } else {
    const std::string* name = ctx.param("subject-name");
    if (!name) return usage_error("Give subject-name= (or subject-identifier=)");
    auto found = ctx.api.call("auth.get_subject_identifier", {*name});
    if (!found) return fail(std::move(found).error());
    sid = text_of(*found);
    auto details = ctx.api.call("auth.get_subject_information_from_identifier", {sid});
    if (!details) return fail(std::move(details).error());
    if (auto* members = details->as_struct()) info = *members;
  }
  auto made = ctx.api.call("subject.create", {wire::structure{{"subject_identifier", sid}, {"other_config", wire::value(std::move(info))}}});
  if (!made) return fail(std::move(made).error());
  ctx.out += ctx.names.uuid_of("subject", text_of(*made)) + "\n";
  return ok_v;
}

}  // namespace

void add_misc_commands(std::vector<command>& out) {
  command h{"help", "Print the commands, or what one does and takes.", {}, {}, nullptr, {}, true, false, help};
  out.push_back(std::move(h));
  out.push_back({"event-wait", "Wait until an object of the class has every field=value given (field=/=value: any other value), e.g. class=vm name-label=x power-state=running.",
                 {"class"}, {}, nullptr, {}, true, true, event_wait});
  out.push_back({"subject-add", "Let a user of the external authentication log in: a subject for subject-name (or subject-identifier); prints its uuid.",
                 {}, {"subject-name", "subject-identifier"}, nullptr, {}, false, true, subject_add});
}

}  // namespace xapid::cli
