// xe's commands: each with the parameters it requires and allows (checked before any call), its
// help, and what it runs. The <class>-list and -param-* commands are made for every class of the
// catalog (class_commands.cpp); the operations are rows of RPC calls (operation_commands.cpp)
// or written by hand (vm_commands.cpp, misc_commands.cpp).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/api_client.hpp"
#include "cli/values.hpp"
#include "cli/xe_classes.hpp"

namespace xapid::cli {

// The command and its name=value parameters, as given; the flags xe knows by their own.
struct invocation {
  std::string command;
  std::vector<std::pair<std::string, std::string>> params;
  bool minimal = false;
  bool force = false;
  bool multiple = false;
  bool all = false;
};

struct command;

struct context {
  api_client& api;
  const invocation& inv;
  std::string& out;
  ref_names names;
  const command* cmd = nullptr;  // the command running

  context(api_client& a, const invocation& i, std::string& o) : api(a), inv(i), out(o), names(a) {}
  const std::string* param(std::string_view name) const;
  std::string param_or(std::string_view name, std::string_view otherwise) const;
};

struct command {
  std::string name;
  std::string help;
  std::vector<std::string> required;
  // Allowed besides: a name ending in ':' allows any key of that map (other-config:foo=bar).
  std::vector<std::string> optional;
  // The class whose objects it selects: any field of it is a filter, and `<selector>=` names one
  // by uuid or name-label.
  const xe_class* selects = nullptr;
  std::string selector;
  bool any_params = false;  // takes key=value pairs of its own (param-add to a map)
  bool needs_session = true;
  std::function<xe_result<void>(context&)> run;
  bool local_session = false;  // logs in at this host even when it is a pool member
  // Groups of parameters of which one is required (vm-migrate's host= or host-uuid=).
  std::vector<std::vector<std::string>> one_of = {};
};

const std::vector<command>& all_commands();
const command* find_command(std::string_view name);
// Usage errors (a missing or unknown parameter), before any call is made.
xe_result<void> check_params(const command& c, const invocation& inv);
std::string usage_of(const command& c);

// The parts each command file adds to the table.
void add_class_commands(std::vector<command>& out);
void add_operation_commands(std::vector<command>& out);
void add_vm_commands(std::vector<command>& out);
void add_misc_commands(std::vector<command>& out);

// --- what commands share ---

// An object and its record, from <Class>.get_all_records or get_record.
struct object {
  std::string ref;
  wire::value record;
};

// Every object of `cls` (its default filters not applied).
xe_result<std::vector<object>> all_objects(context& ctx, const xe_class& cls);
// Whether `o` passes every filter: field=value (the value as xe prints it), map:key=value,
// set:contains=value; `selector`=value matches the uuid or the name-label.
xe_result<bool> passes(context& ctx, const xe_class& cls, const object& o,
                       const std::vector<std::pair<std::string, std::string>>& filters, std::string_view selector = {});
// The filters of the command line: every parameter that names a field (or map key) of `cls`,
// and the selector; not the parameters `own` (the command) takes for itself.
std::vector<std::pair<std::string, std::string>> filters_of(const invocation& inv, const xe_class& cls, std::string_view selector,
                                                            const command* own);
// The objects a command acts on: the uuid or the selector alone is one object; any other filter
// is matched against every object, and more than one needs --multiple.
xe_result<std::vector<object>> selected_objects(context& ctx, const xe_class& cls, std::string_view selector);
// The ref of the object of `cls` named by uuid or name-label (exactly one).
xe_result<std::string> named_object(context& ctx, const xe_class& cls, std::string_view name_or_uuid);

// The objects' `fields` in xe's layout (or --minimal) into ctx.out.
void print_objects(context& ctx, const xe_class& cls, const std::vector<object>& objects, const std::vector<std::string>& fields);
std::vector<std::string> split(std::string_view text, char separator);
bool looks_like_uuid(std::string_view s);

}  // namespace xapid::cli
