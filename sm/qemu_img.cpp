#include "sm/qemu_img.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <rapidjson/document.h>

extern char** environ;

namespace xapid::sm {
namespace {

// Reads both pipes to their end without letting either fill up.
void drain(int out_fd, int err_fd, std::string& out, std::string& err) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? out : err).append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
}

}  // namespace

tool_result<std::string> run_tool(const std::vector<std::string>& argv) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return fail(tool_failure{-1, {}, std::strerror(errno)});
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return fail(tool_failure{-1, {}, std::strerror(errno)});
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return fail(tool_failure{-1, {}, "cannot run " + argv[0] + ": " + std::strerror(rc)});
  }
  std::string out, err;
  drain(out_pipe[0], err_pipe[0], out, err);
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (code != 0) return fail(tool_failure{code, std::move(out), std::move(err)});
  return out;
}

tool_result<image_info> image_info_of(const std::string& path) {
  auto out = run_tool({"qemu-img", "info", "--output=json", "-U", path});
  if (!out) return fail(out.error());
  rapidjson::Document d;
  d.Parse(out->c_str());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("virtual-size"))
    return fail(tool_failure{0, *out, "qemu-img info gave no virtual size for " + path});
  image_info info;
  info.virtual_size = d["virtual-size"].GetInt64();
  if (d.HasMember("actual-size") && d["actual-size"].IsInt64()) info.actual_size = d["actual-size"].GetInt64();
  if (d.HasMember("format") && d["format"].IsString()) info.format = d["format"].GetString();
  if (d.HasMember("backing-filename") && d["backing-filename"].IsString())
    info.backing_file = d["backing-filename"].GetString();
  return info;
}

tool_result<void> create_qcow2(const std::string& path, std::int64_t size, const std::string& backing) {
  std::vector<std::string> argv{"qemu-img", "create", "-q", "-f", "qcow2"};
  if (!backing.empty()) argv.insert(argv.end(), {"-b", backing, "-F", "qcow2"});
  argv.push_back(path);
  if (backing.empty() || size > 0) argv.push_back(std::to_string(size));
  auto r = run_tool(argv);
  if (!r) return fail(r.error());
  return ok_v;
}

tool_result<void> create_raw(const std::string& path, std::int64_t size) {
  auto r = run_tool({"qemu-img", "create", "-q", "-f", "raw", path, std::to_string(size)});
  if (!r) return fail(r.error());
  return ok_v;
}

tool_result<void> convert_to_qcow2(const std::string& from, const std::string& to) {
  auto r = run_tool({"qemu-img", "convert", "-q", "-U", "-O", "qcow2", from, to});
  if (!r) return fail(r.error());
  return ok_v;
}

tool_result<void> rebase(const std::string& path, const std::string& new_backing) {
  std::vector<std::string> argv{"qemu-img", "rebase", "-q", "-f", "qcow2", "-b", new_backing};
  if (!new_backing.empty()) argv.insert(argv.end(), {"-F", "qcow2"});
  argv.push_back(path);
  auto r = run_tool(argv);
  if (!r) return fail(r.error());
  return ok_v;
}

tool_result<void> resize(const std::string& path, std::int64_t size) {
  auto r = run_tool({"qemu-img", "resize", "-q", "-f", "qcow2", path, std::to_string(size)});
  if (!r) return fail(r.error());
  return ok_v;
}

}  // namespace xapid::sm
