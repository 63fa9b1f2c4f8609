// What a Raft connection costs through the authenticating transport (storage/raft_transport.hpp):
// a TCP connect, the handshake's three messages, two HMAC-SHA256 and a nonce on each side;
// against the ceiling of plain TCP connects accepted on the same loop (libraft's own transport is
// that plus one unanswered write). Connections one after another on one libuv loop, on 127.0.0.1;
// the median of 3 rounds. A member keeps its connection to each peer: this is the price of a
// (re)connect, never of a commit.
// Usage: raft_transport_bench [CONNECTIONS]   (default 2000 a round)
#include <uv.h>
extern "C" {
#include <raft.h>
#include <raft/uv.h>
}

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "storage/raft_transport.hpp"
#include "tests/support/free_port.hpp"

namespace {

using steady = std::chrono::steady_clock;
using xapid::storage::raft_transport;
using xapid::storage::raft_transport_options;

void close_and_free(uv_stream_t* s) {
  uv_close(reinterpret_cast<uv_handle_t*>(s), [](uv_handle_t* h) { raft_free(h); });
}
void run_until(uv_loop_t* loop, const bool& done) {
  while (!done) uv_run(loop, UV_RUN_ONCE);
}
// Seconds for `n` connections of `chain` one after another, until the acceptor had them all.
template <class Chain>
double seconds_for(Chain& chain, int n) {
  chain.left = n;
  const auto start = steady::now();
  chain.next();
  run_until(chain.loop, chain.done);
  while (chain.accepted < n) uv_run(chain.loop, UV_RUN_ONCE);
  return std::chrono::duration<double>(steady::now() - start).count();
}

// Connections per second: one at a time, each closed once connected; the acceptor closes its end.
struct plain_tcp {
  uv_loop_t* loop;
  uv_tcp_t listener{};
  sockaddr_in address{};
  int left = 0, accepted = 0;
  bool done = false;

  double per_s(int n) {
    uv_tcp_init(loop, &listener);
    listener.data = this;
    uv_ip4_addr("127.0.0.1", xapid::testing::free_port(), &address);
    uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&address), 0);
    uv_listen(reinterpret_cast<uv_stream_t*>(&listener), 128, [](uv_stream_t* l, int) {
      auto* self = static_cast<plain_tcp*>(l->data);
      auto* in = static_cast<uv_tcp_t*>(raft_malloc(sizeof(uv_tcp_t)));
      uv_tcp_init(self->loop, in);
      uv_accept(l, reinterpret_cast<uv_stream_t*>(in));
      ++self->accepted;
      close_and_free(reinterpret_cast<uv_stream_t*>(in));
    });
    const double s = seconds_for(*this, n);
    bool closed = false;
    listener.data = &closed;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), [](uv_handle_t* h) { *static_cast<bool*>(h->data) = true; });
    run_until(loop, closed);
    return n / s;
  }
  void next() {
    if (left-- == 0) {
      done = true;
      return;
    }
    auto* out = static_cast<uv_tcp_t*>(raft_malloc(sizeof(uv_tcp_t)));
    uv_tcp_init(loop, out);
    auto* req = new uv_connect_t;
    req->data = this;
    uv_tcp_connect(req, out, reinterpret_cast<const sockaddr*>(&address), [](uv_connect_t* req, int status) {
      auto* self = static_cast<plain_tcp*>(req->data);
      if (status != 0) std::abort();
      close_and_free(req->handle);
      delete req;
      self->next();
    });
  }
};

raft_transport_options options() {
  raft_transport_options o;
  o.pool_secret = std::string(32, 's');
  o.pool_id = std::string(16, 'p');
  o.admits = [](std::uint64_t) { return true; };
  return o;
}

// The same through two members' transports, as libraft drives them.
struct handshakes {
  uv_loop_t* loop;
  raft_transport server{loop, options()}, client{loop, options()};
  std::string server_address = "127.0.0.1:" + std::to_string(xapid::testing::free_port());
  raft_uv_connect req{};
  int left = 0, accepted = 0;
  bool done = false;

  double per_s(int n) {
    raft_uv_transport* s = server.get();
    raft_uv_transport* c = client.get();
    s->data = c->data = this;
    if (s->init(s, 2, server_address.c_str()) != 0 || c->init(c, 1, ("127.0.0.1:" + std::to_string(xapid::testing::free_port())).c_str()) != 0 ||
        s->listen(s, [](raft_uv_transport* t, raft_id, const char*, uv_stream_t* stream) {
          ++static_cast<handshakes*>(t->data)->accepted;
          close_and_free(stream);
        }) != 0)
      std::abort();
    const double seconds = seconds_for(*this, n);
    int closed = 0;
    for (raft_uv_transport* t : {s, c}) {
      t->data = &closed;
      t->close(t, [](raft_uv_transport* t) { ++*static_cast<int*>(t->data); });
    }
    while (closed < 2) uv_run(loop, UV_RUN_ONCE);
    return n / seconds;
  }
  void next() {
    if (left-- == 0) {
      done = true;
      return;
    }
    raft_uv_transport* c = client.get();
    req.data = this;
    if (c->connect(c, &req, 2, server_address.c_str(), [](raft_uv_connect* req, uv_stream_t* stream, int status) {
          if (status != 0) std::abort();
          close_and_free(stream);
          static_cast<handshakes*>(req->data)->next();
        }) != 0)
      std::abort();
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 2000;
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::vector<double> plain, authenticated;
  for (int round = 0; round < 3; ++round) {  // taking turns: the machine is shared
    plain.push_back(plain_tcp{&loop}.per_s(n));
    authenticated.push_back(handshakes{&loop}.per_s(n));
  }
  const double ceiling = median(plain), ours = median(authenticated);
  std::printf("plain TCP connect + accept:     %8.0f /s  %6.1f us each   (ceiling)\n", ceiling, 1e6 / ceiling);
  std::printf("raft_transport connect + proof: %8.0f /s  %6.1f us each   (%.2f x ceiling)\n", ours, 1e6 / ours, ours / ceiling);
  uv_loop_close(&loop);
}
