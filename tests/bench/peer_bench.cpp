// The cost of the TLS between a pool's hosts, against the same gRPC service without TLS in the
// same run (the ceiling), both served on 127.0.0.2 by this process:
//   calls: sequential Pings on one channel (its connection made once): the steady cost of TLS
//     and of the handler's caller_fingerprint (a PEM read and a SHA-256 per call);
//   connections: a new channel for every Ping: the handshake and the pin's check each time;
//   certificate_fingerprint alone (it decodes the certificate: what a join's check costs).
// The machine is shared: the kinds take turns, round after round; each reports its median round.
// Usage: peer_bench [SECONDS_PER_ROUND]   (default 2)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "tests/support/peer_server.hpp"

namespace {

using namespace std::chrono;
using xapid::peer::PingReply;
using xapid::peer::PingRequest;
using xapid::peer::PoolPeer;

struct rate {
  double per_s = 0;
  double p50_us = 0, p99_us = 0;
};

// Runs `one` (which must succeed) over and over for `seconds`.
rate measure(double seconds, const std::function<bool()>& one) {
  std::vector<double> latencies_us;
  const auto start = steady_clock::now();
  auto now = start;
  while (duration<double>(now - start).count() < seconds) {
    const auto began = now;
    if (!one()) {
      std::fprintf(stderr, "a call failed\n");
      std::exit(1);
    }
    now = steady_clock::now();
    latencies_us.push_back(duration<double, std::micro>(now - began).count());
  }
  std::sort(latencies_us.begin(), latencies_us.end());
  return {latencies_us.size() / duration<double>(now - start).count(), latencies_us[latencies_us.size() / 2],
          latencies_us[latencies_us.size() * 99 / 100]};
}

bool ping(PoolPeer::Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(system_clock::now() + seconds(10));
  PingReply reply;
  return stub.Ping(&context, PingRequest(), &reply).ok();
}

rate median(std::vector<rate> rounds) {
  std::sort(rounds.begin(), rounds.end(), [](const rate& a, const rate& b) { return a.per_s < b.per_s; });
  return rounds[rounds.size() / 2];
}

void report(const char* label, const rate& r, double ceiling) {
  std::printf("%-40s %9.0f /s  p50 %8.1f us  p99 %8.1f us  (%.2f x ceiling)\n", label, r.per_s, r.p50_us, r.p99_us,
              r.per_s / ceiling);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2;
  xapid::testing::peer_identity server_host("server-host", "127.0.0.2");
  xapid::testing::peer_identity client_host("client-host", "127.0.0.3");
  xapid::testing::peer_server tls_server("127.0.0.2", server_host.tls);
  xapid::testing::peer_server plain_server("127.0.0.2");

  // Its own subchannel pool, or a new plain channel would share the first one's connection.
  auto plain_channel = [&] {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(plain_server.address(), grpc::InsecureChannelCredentials(), args);
  };
  auto pinned_channel = [&] {
    return xapid::pool::peer_channel(tls_server.address(), client_host.tls, server_host.fingerprint);
  };
  auto plain_stub = PoolPeer::NewStub(plain_channel());
  auto pinned_stub = PoolPeer::NewStub(pinned_channel());

  constexpr int rounds = 3;
  std::vector<rate> plain_calls, pinned_calls, plain_connections, pinned_connections, fingerprints;
  for (int round = 0; round < rounds; ++round) {
    plain_calls.push_back(measure(seconds, [&] { return ping(*plain_stub); }));
    pinned_calls.push_back(measure(seconds, [&] { return ping(*pinned_stub); }));
    plain_connections.push_back(measure(seconds, [&] { return ping(*PoolPeer::NewStub(plain_channel())); }));
    pinned_connections.push_back(measure(seconds, [&] { return ping(*PoolPeer::NewStub(pinned_channel())); }));
    fingerprints.push_back(measure(seconds, [&] {
      return xapid::pool::certificate_fingerprint(client_host.tls.certificate_pem).ok();
    }));
  }
  const rate plain_call = median(plain_calls), plain_connection = median(plain_connections);
  report("Ping, one channel, no TLS", plain_call, plain_call.per_s);
  report("Ping, one channel, pinned TLS", median(pinned_calls), plain_call.per_s);
  report("Ping on a new channel, no TLS", plain_connection, plain_connection.per_s);
  report("Ping on a new channel, pinned TLS", median(pinned_connections), plain_connection.per_s);
  const rate fingerprint = median(fingerprints);
  std::printf("%-40s %9.0f /s  p50 %8.1f us\n", "certificate_fingerprint (decodes it)", fingerprint.per_s,
              fingerprint.p50_us);
}
