// xe: the operators' command line. Reads where and who from ~/.xe, XE_EXTRA_ARGS and the command
// line (in that order, the last word winning), checks the command's parameters, logs in, runs it.
#include <malloc.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "cli/commands.hpp"
#include "xapid/api/error_texts.hpp"
#include "xapid/api/errors.hpp"

namespace xapid::cli {
namespace {

struct settings {
  std::string server, socket, cert, username, password, password_file;
  unsigned port = 0;
  bool nossl = false;
  bool xmlrpc = false;
  invocation inv;
};

bool truthy(std::string_view v) { return v == "true" || v == "1" || v == "yes" || v == "on" || v.empty(); }

// A name=value xe reads as a setting rather than as the command's parameter; false otherwise.
bool take_setting(settings& s, std::string_view name, const std::string& value) {
  if (name == "server") s.server = value;
  else if (name == "port") s.port = static_cast<unsigned>(std::strtoul(value.c_str(), nullptr, 10));
  else if (name == "username") s.username = value;
  else if (name == "password") s.password = value;
  else if (name == "passwordfile") s.password_file = value;
  else if (name == "nossl") s.nossl = truthy(value);
  else if (name == "xmlrpc") s.xmlrpc = truthy(value);
  else if (name == "socket") s.socket = value;
  else if (name == "cert") s.cert = value;
  else if (name == "minimal") s.inv.minimal = truthy(value);
  else if (name == "force") s.inv.force = truthy(value);
  else if (name == "multiple") s.inv.multiple = truthy(value);
  else if (name == "all") s.inv.all = truthy(value);
  else return false;
  return true;
}

void take_word(settings& s, const std::string& word) {
  auto eq = word.find('=');
  if (eq == std::string::npos) {
    if (s.inv.command.empty()) s.inv.command = word;
    else s.inv.params.emplace_back(word, "");  // `xe help vm-start`
    return;
  }
  std::string name = word.substr(0, eq), value = word.substr(eq + 1);
  if (!take_setting(s, name, value)) s.inv.params.emplace_back(std::move(name), std::move(value));
}

// xapi's xe: `-s host -p port -u user -pw password -pwf file --nossl`, flags `--name`.
xe_result<void> read_command_line(settings& s, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](const char* what) -> xe_result<std::string> {
      if (i + 1 >= argc) return usage_error(std::string(a) + " needs " + what);
      return std::string(argv[++i]);
    };
    std::string_view setting = a == "-s" ? "server" : a == "-p" ? "port" : a == "-u" ? "username" : a == "-pw" ? "password"
                             : a == "-pwf" ? "passwordfile" : a == "--socket" ? "socket" : a == "--cert" ? "cert" : "";
    if (!setting.empty()) {
      auto v = value("a value");
      if (!v) return fail(std::move(v).error());
      (void)take_setting(s, setting, *v);
    } else if (a.starts_with("--")) {
      if (!take_setting(s, a.substr(2), "true")) return usage_error("Unknown flag: " + std::string(a));
    } else {
      take_word(s, std::string(a));
    }
  }
  return ok_v;
}

// The user's home directory: $HOME, else the password database's; empty when neither says.
std::string home_dir() {
  if (const char* home = std::getenv("HOME"); home && *home) return home;
  if (const passwd* pw = getpwuid(getuid()); pw && pw->pw_dir && *pw->pw_dir) return pw->pw_dir;
  return {};
}

// A file that holds a password should be the user's alone: said on stderr when others may read
// it or write it (beyond xapi's xe, which reads it silently).
void warn_if_not_private(const std::string& file) {
  struct stat st {};
  if (stat(file.c_str(), &st) != 0 || (st.st_mode & 077) == 0) return;
  std::fprintf(stderr, "xe: %s may be read or changed by other users (mode %04o): chmod 600 it\n", terminal_safe(file).c_str(),
               static_cast<unsigned>(st.st_mode & 07777));
}

void read_rc_file(settings& s) {
  const std::string home = home_dir();
  if (home.empty()) return;
  const std::string file = home + "/.xe";
  std::ifstream rc(file);
  if (rc) warn_if_not_private(file);
  std::string line;
  while (std::getline(rc, line)) {
    auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    (void)take_setting(s, line.substr(0, eq), line.substr(eq + 1));
  }
}

void read_extra_args(settings& s) {
  const char* extra = std::getenv("XE_EXTRA_ARGS");
  if (!extra) return;
  for (auto& word : split(extra, ','))
    if (!word.empty()) take_word(s, word);
}

endpoint endpoint_of(const settings& s) {
  endpoint e;
  if (s.server.empty()) {
    // The daemon's socket in its data dir, found as deploy/start finds that dir: $XAPID_DATA_DIR
    // (unset or empty: `data`, relative to the working directory, as deploy/start's is to the
    // checkout it runs from; xapid itself has no default --data-dir).
    const char* dir = std::getenv("XAPID_DATA_DIR");
    e.socket_path = !s.socket.empty() ? s.socket : std::string(dir && *dir ? dir : "data") + "/xapid.sock";
    return e;
  }
  e.host = s.server;
  e.tls = !s.nossl;
  e.port = s.port ? s.port : e.tls ? 443 : 80;
  e.cert_file = s.cert;
  // Never the working directory (someone else's, perhaps): without a home, no certificate is
  // trusted on first use and --cert is needed.
  const std::string home = home_dir();
  if (!home.empty()) e.known_hosts = home + "/.xe-known-hosts";
  return e;
}

xe_result<credentials> credentials_of(const settings& s) {
  credentials who{s.username, s.password};
  if (!s.password_file.empty()) {
    std::ifstream f(s.password_file);
    if (!f) return local_error("cannot read the password file " + s.password_file);
    warn_if_not_private(s.password_file);
    std::getline(f, who.password);
  }
  if (who.username.empty() && !s.server.empty()) who.username = "root";
  return who;
}

// A parameter of a server error as xapi's xe shows it: a ref named after a class (vm, SR,
// host: the datamodel spells them either way) as its object's uuid and name, when it can still
// be found; any other text as it is.
std::string shown_parameter(std::string_view name, const std::string& value, api_client* api) {
  std::string lower(name);
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const xe_class* cls = api && value.starts_with("OpaqueRef:") ? find_xe_class(lower) : nullptr;
  if (!cls) return value;
  auto uuid = api->call(cls->wire("get_uuid"), {value});
  if (!uuid || !uuid->as_string()) return value;
  auto label = api->call(cls->wire("get_name_label"), {value});
  return *uuid->as_string() + (label && label->as_string() ? " (" + *label->as_string() + ")" : "");
}

// Exit status 1 for every failure, as xapi's xe. A server error: what its code means (the
// seed's words), its code, each parameter by its datamodel name; a code the datamodel does not
// know, as xapi's xe prints one.
int report(const xe_error& e, const command* c, api_client* api = nullptr) {
  if (!e.server.empty()) {
    auto code = api::error_code_from_string(e.server[0]);
    if (!code) {
      std::string params;
      for (std::size_t i = 1; i < e.server.size(); ++i) params += (i > 1 ? ", " : "") + e.server[i];
      std::fprintf(stderr, "Error code: %s\nError parameters: %s\n", terminal_safe(e.server[0]).c_str(),
                   terminal_safe(params).c_str());
      return 1;
    }
    std::fprintf(stderr, "%.*s\n", int(api::error_text(*code).size()), api::error_text(*code).data());
    std::fprintf(stderr, "code: %s\n", e.server[0].c_str());
    auto names = api::describe(*code).params;
    for (std::size_t i = 1; i < e.server.size(); ++i) {
      std::string name = i - 1 < names.size() ? std::string(names[i - 1]) : "<extra>";
      std::fprintf(stderr, "%s: %s\n", name.c_str(), terminal_safe(shown_parameter(name, e.server[i], api)).c_str());
    }
    return 1;
  }
  std::fprintf(stderr, "%s\n", terminal_safe(e.message).c_str());  // it may quote the server
  if (e.usage && c) std::fputs(usage_of(*c).c_str(), stderr);
  if (e.usage && !c) std::fputs("For usage run: 'xe help'\n", stderr);
  return 1;
}

// A table's answer becomes ~10 bytes of tree per byte of JSON, all touched once: 4 KiB pages
// cost a fault each (3,600 for 1,000 VMs, a third of xe's time on this VM). The heap grows by
// 96 MiB at first and 64 MiB at a time, every allocation is taken from it (not mmap'd on its own), and the kernel is
// asked for 2 MiB pages there, as glibc's tunables hugetlb=1 and top_pad would: 1,000 VMs listed
// in 27 ms instead of 40 (pages are only made when touched: `xe help` stays small).
void prepare_heap() {
  constexpr std::size_t huge_page = 2u << 20;
  (void)mallopt(M_TOP_PAD, 64 << 20);
  (void)mallopt(M_TRIM_THRESHOLD, 512 << 20);
  (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest
  auto from = (reinterpret_cast<std::uintptr_t>(sbrk(0)) + huge_page - 1) & ~(huge_page - 1);
  // Untouched, its pages are only made when used; volatile, or the compiler drops the pair.
  void* volatile grown = std::malloc(16 << 20);
  auto to = reinterpret_cast<std::uintptr_t>(sbrk(0)) & ~(huge_page - 1);
  if (to > from) (void)madvise(reinterpret_cast<void*>(from), to - from, MADV_HUGEPAGE);
  std::free(grown);
}

int run(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a closed connection or pipe is an error to report, not death
  prepare_heap();
  settings s;
  read_rc_file(s);
  read_extra_args(s);
  if (auto read = read_command_line(s, argc, argv); !read) return report(read.error(), nullptr);
  if (s.inv.command.empty()) s.inv.command = "help";
  const command* c = find_command(s.inv.command);
  if (!c) return report(xe_error{{}, "Unknown command: " + s.inv.command, true}, nullptr);
  if (auto checked = check_params(*c, s.inv); !checked) return report(checked.error(), c);
  auto who = credentials_of(s);
  if (!who) return report(who.error(), c);
  api_client api(endpoint_of(s), *who, s.xmlrpc ? encoding::xml_rpc : encoding::json_rpc);
  std::string out;
  context ctx(api, s.inv, out);
  ctx.cmd = c;
  if (c->needs_session)
    if (auto in = api.login(c->local_session); !in) return report(in.error(), c);
  auto ran = c->run(ctx);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return ran ? 0 : report(ran.error(), c, &api);
}

}  // namespace
}  // namespace xapid::cli

int main(int argc, char** argv) { return xapid::cli::run(argc, argv); }
