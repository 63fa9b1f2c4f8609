// The pool's peer service on loopback for tests and benchmarks: a host's certificate made as a
// first boot makes it (in a temporary directory), and a PoolPeer server whose Ping answers and
// records the caller's certificate fingerprint, and whose Join echoes the checkpoint back.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "gateway/http/tls_certificate.hpp"
#include "pool/peer_tls.hpp"
#include "tests/support/temp_dir.hpp"
#include "xapid/grpc/pool_peer.grpc.pb.h"

namespace xapid::testing {

[[noreturn]] inline void peer_setup_failed(const std::string& what) {
  std::fprintf(stderr, "peer test setup: %s\n", what.c_str());
  std::abort();
}

// A host's own certificate and key, as ensure_tls_certificate makes them on first boot.
struct peer_identity {
  temp_dir dir;
  pool::host_tls tls;
  std::string fingerprint;
  std::string certificate_path;

  peer_identity(const std::string& hostname, const std::string& address) {
    auto files = gateway::ensure_tls_certificate(dir.path(), hostname, address);
    if (!files) peer_setup_failed(files.error());
    auto read = pool::read_host_tls(files->certificate, files->key);
    if (!read) peer_setup_failed(read.error());
    tls = std::move(read).value();
    auto fp = pool::certificate_fingerprint(tls.certificate_pem);
    if (!fp) peer_setup_failed(fp.error());
    fingerprint = std::move(fp).value();
    certificate_path = files->certificate;
  }
};

class recording_peer final : public peer::PoolPeer::Service {
 public:
  ::grpc::Status Ping(::grpc::ServerContext* context, const peer::PingRequest*,
                      peer::PingReply* reply) override {
    record(*context);
    reply->set_host_uuid("recording-peer");
    reply->set_master(true);
    return ::grpc::Status::OK;
  }

  // The checkpoint comes back as the secret: a big one crosses the message limit both ways.
  ::grpc::Status Join(::grpc::ServerContext* context, const peer::JoinRequest* request,
                      peer::JoinReply* reply) override {
    record(*context);
    reply->set_secret(request->checkpoint());
    return ::grpc::Status::OK;
  }

  // The caller's fingerprint of every call handled, in order.
  std::vector<std::string> callers() const {
    std::lock_guard lock(mu_);
    return callers_;
  }

 private:
  void record(const ::grpc::ServerContext& context) {
    std::string caller = pool::caller_fingerprint(context);
    std::lock_guard lock(mu_);
    callers_.push_back(std::move(caller));
  }

  mutable std::mutex mu_;
  std::vector<std::string> callers_;
};

// A recording_peer served on `host` (a loopback address), on a port the kernel chooses.
class peer_server {
 public:
  peer_server(const std::string& host, const pool::host_tls& tls) {
    ::grpc::ServerBuilder builder;
    pool::add_peer_listener(builder, host + ":0", tls, &port_);
    start(builder, host);
  }
  // Without TLS: the ceiling a benchmark compares the TLS channel with.
  explicit peer_server(const std::string& host) {
    ::grpc::ServerBuilder builder;
    builder.AddListeningPort(host + ":0", ::grpc::InsecureServerCredentials(), &port_);
    start(builder, host);
  }
  ~peer_server() { server_->Shutdown(); }
  peer_server(const peer_server&) = delete;
  peer_server& operator=(const peer_server&) = delete;

  const std::string& address() const { return address_; }
  int port() const { return port_; }
  recording_peer& service() { return service_; }

 private:
  void start(::grpc::ServerBuilder& builder, const std::string& host) {
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) peer_setup_failed("cannot serve on " + host);
    address_ = host + ":" + std::to_string(port_);
  }

  recording_peer service_;
  std::unique_ptr<::grpc::Server> server_;
  int port_ = 0;
  std::string address_;
};

}  // namespace xapid::testing
