#include "gateway/logging.hpp"

#include <map>
#include <mutex>
#include <shared_mutex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <grpc/support/log.h>
#include <spdlog/spdlog.h>

#include "common/log_host.hpp"
#include "common/loggable.hpp"

namespace xapid::gateway {
namespace {

// `%*`: "host=<label> " for a thread working for a host, nothing otherwise.
class host_flag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    const std::string& host = current_log_host();
    if (host.empty()) return;
    static constexpr std::string_view prefix = "host=";
    dest.append(prefix.data(), prefix.data() + prefix.size());
    dest.append(host.data(), host.data() + host.size());
    dest.push_back(' ');
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<host_flag>(); }
};

std::unique_ptr<spdlog::formatter> line_format() {
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<host_flag>('*').set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %*%v");
  return f;
}

// Hands a line to the file of the host its thread works for; a line of no host (the process
// starting or stopping) goes to every host's file.
class routing_sink final : public spdlog::sinks::sink {
 public:
  void log(const spdlog::details::log_msg& msg) override {
    std::shared_lock lock(mu_);
    const std::string& host = current_log_host();
    if (!host.empty()) {
      if (auto it = files_.find(host); it != files_.end()) it->second->log(msg);
      return;
    }
    for (auto& [name, file] : files_) file->log(msg);
  }
  void flush() override {
    std::shared_lock lock(mu_);
    for (auto& [name, file] : files_) file->flush();
  }
  void set_pattern(const std::string&) override {}
  void set_formatter(std::unique_ptr<spdlog::formatter>) override {}

  // False when another host logs under that name.
  bool add(const std::string& host, std::shared_ptr<spdlog::sinks::sink> file) {
    file->set_formatter(line_format());
    std::unique_lock lock(mu_);
    return files_.try_emplace(host, std::move(file)).second;
  }
  void remove(const std::string& host) {
    std::unique_lock lock(mu_);
    files_.erase(host);
  }

 private:
  std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<spdlog::sinks::sink>> files_;
};

std::shared_ptr<routing_sink>& router() {
  static auto r = std::make_shared<routing_sink>();
  return r;
}

// gRPC's own lines (the pool's peer traffic) go to the same log as everything else, instead
// of stderr in gRPC's format; its errors are mostly a peer that went away: warnings here.
void grpc_to_spdlog(gpr_log_func_args* a) {
  const auto level = a->severity == GPR_LOG_SEVERITY_ERROR  ? spdlog::level::warn
                     : a->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::info
                                                            : spdlog::level::debug;
  std::string_view file = a->file ? a->file : "";
  if (auto slash = file.rfind('/'); slash != std::string_view::npos) file.remove_prefix(slash + 1);
  spdlog::log(level, "grpc.log source={}:{} message=\"{}\"", loggable(file), a->line, loggable(a->message ? a->message : "", 1024));
}

}  // namespace

void install_logging(bool console) {
  gpr_set_log_function(grpc_to_spdlog);
  std::vector<spdlog::sink_ptr> sinks{router()};
  if (console) {
    auto err = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    err->set_formatter(line_format());
    sinks.push_back(std::move(err));
  }
  auto logger = std::make_shared<spdlog::logger>("xapid", sinks.begin(), sinks.end());
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

result<std::unique_ptr<host_log>, std::string> host_log::open(std::string host, const std::string& data_dir) {
  std::shared_ptr<spdlog::sinks::sink> file;
  try {
    file = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(data_dir + "/xapid.log", 16u << 20, 5);
  } catch (const spdlog::spdlog_ex& e) {
    return fail("cannot open " + data_dir + "/xapid.log: " + e.what());
  }
  if (!router()->add(host, std::move(file))) return fail("another host of this process logs as " + host);
  return std::unique_ptr<host_log>(new host_log(std::move(host)));
}

host_log::~host_log() { router()->remove(host_); }

}  // namespace xapid::gateway
