// Raft's transport on its own, with real sockets on loopback: a libuv loop on a thread of its own
// runs members' transports as libraft drives them (init, listen, connect, close; streams handed
// over), and peers written from the handshake's description (tests/support/raft_handshake_peer.hpp)
// speak it right or wrong from outside.
#include <gtest/gtest.h>

#include <uv.h>
extern "C" {
#include <raft.h>
#include <raft/uv.h>
}

#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "storage/raft_transport.hpp"
#include "tests/support/free_port.hpp"
#include "tests/support/raft_handshake_peer.hpp"

namespace xapid::storage {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using testing::raft_handshake;
using testing::raw_connection;
using testing::raw_listener;

const std::string pool_secret = "0123456789abcdef0123456789abcdef";
const std::string pool_id = "pool-id-16-bytes";
constexpr std::uint64_t not_admitted = 99;

raft_transport_options options(std::string secret = pool_secret, std::string pool = pool_id) {
  raft_transport_options o;
  o.pool_secret = std::move(secret);
  o.pool_id = std::move(pool);
  o.admits = [](std::uint64_t id) { return id != not_admitted; };
  return o;
}
raft_transport_options with_deadline(std::chrono::milliseconds deadline) {
  raft_transport_options o = options();
  o.handshake_deadline = deadline;
  return o;
}

std::string loopback(int last_byte) { return "127.0.0." + std::to_string(last_byte) + ":" + std::to_string(testing::free_port()); }

// A libuv loop on its own thread; `run` executes a function there and returns its result.
class loop_thread {
 public:
  loop_thread() {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &wake_, [](uv_async_t* a) { static_cast<loop_thread*>(a->data)->drain(); });
    wake_.data = this;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }
  template <class F>
  auto run(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    {
      std::lock_guard lock(mu_);
      tasks_.push_back([&task] { task(); });
    }
    uv_async_send(&wake_);
    return result.get();
  }
  uv_loop_t* loop() { return &loop_; }
  ~loop_thread() {
    run([this] { uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr); });
    thread_.join();  // uv_run returns once every handle is closed
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
  }

 private:
  void drain() {
    std::deque<std::function<void()>> work;
    {
      std::lock_guard lock(mu_);
      work.swap(tasks_);
    }
    for (auto& w : work) w();
  }
  uv_loop_t loop_{};
  uv_async_t wake_{};
  std::mutex mu_;
  std::deque<std::function<void()>> tasks_;
  std::thread thread_;
};

// Whether `pred` (run on the loop) becomes true within `limit`.
template <class Pred>
bool eventually(loop_thread& lt, Pred pred, std::chrono::milliseconds limit = 5s) {
  for (auto until = steady::now() + limit; steady::now() < until; std::this_thread::sleep_for(5ms))
    if (lt.run(pred)) return true;
  return lt.run(pred);
}

// A stream handed over by the transport, read (or written) as libraft would.
struct stream_end {
  uv_tcp_t* tcp = nullptr;
  std::string received;
  bool ended = false;   // the peer closed it
  bool closed = false;  // we closed it and its memory is freed
  std::array<char, 4096> buf{};
};

void start_reading(stream_end& s) {
  s.tcp->data = &s;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(s.tcp),
      [](uv_handle_t* h, std::size_t, uv_buf_t* buf) {
        auto* s = static_cast<stream_end*>(h->data);
        *buf = uv_buf_init(s->buf.data(), static_cast<unsigned>(s->buf.size()));
      },
      [](uv_stream_t* h, ssize_t n, const uv_buf_t* buf) {
        auto* s = static_cast<stream_end*>(h->data);
        if (n > 0) s->received.append(buf->base, static_cast<std::size_t>(n));
        if (n < 0) s->ended = true;
      });
}

// One member's transport, driven on the loop as libraft drives it.
struct endpoint {
  endpoint(loop_thread& l, std::uint64_t id, std::string addr, raft_transport_options o = options())
      : lt(l), self_id(id), address(std::move(addr)), transport(l.loop(), std::move(o)) {
    t()->data = this;
    init_status = lt.run([this] { return t()->init(t(), self_id, address.c_str()); });
    if (init_status != 0) closed = true;  // nothing to close: libraft would not close it either
  }
  ~endpoint() { close(); }

  raft_uv_transport* t() { return transport.get(); }

  int listen() {
    return lt.run([this] {
      return t()->listen(t(), [](raft_uv_transport* t, raft_id id, const char* address, uv_stream_t* stream) {
        auto& self = *static_cast<endpoint*>(t->data);
        auto& a = self.accepted.emplace_back(std::make_unique<accepted_stream>());
        a->id = id;
        a->address = address;
        a->end.tcp = reinterpret_cast<uv_tcp_t*>(stream);
        start_reading(a->end);
      });
    });
  }

  struct accepted_stream {
    std::uint64_t id = 0;
    std::string address;
    stream_end end;
  };
  struct connection {
    raft_uv_connect req{};
    bool done = false;
    int status = 0;
    stream_end end;
  };

  // A connect as libraft's sending side makes it; its outcome lands in the record.
  std::shared_ptr<connection> connect(std::uint64_t id, const std::string& to) {
    auto c = std::make_shared<connection>();
    c->req.data = c.get();
    connections.push_back(c);
    const int rv = lt.run([&] {
      return t()->connect(t(), &c->req, id, to.c_str(), [](raft_uv_connect* req, uv_stream_t* stream, int status) {
        auto* c = static_cast<connection*>(req->data);
        EXPECT_FALSE(c->done) << "a connect is answered once";
        EXPECT_EQ(stream == nullptr, status != 0) << "a stream exactly when it succeeded";
        c->done = true;
        c->status = status;
        c->end.tcp = reinterpret_cast<uv_tcp_t*>(stream);
        if (stream) c->end.tcp->data = &c->end;
      });
    });
    if (rv != 0) {
      c->done = true;
      c->status = rv;
    }
    return c;
  }
  bool connected(const std::shared_ptr<connection>& c, std::chrono::milliseconds limit = 5s) {
    return eventually(lt, [&] { return c->done; }, limit) && lt.run([&] { return c->status; }) == 0;
  }

  // Writes on a connected stream (libraft's sends).
  void send(connection& c, std::string bytes) {
    lt.run([&] {
      struct write_request {
        uv_write_t req{};
        std::string bytes;
      };
      auto* w = new write_request{{}, std::move(bytes)};
      w->req.data = w;
      uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
      uv_write(&w->req, reinterpret_cast<uv_stream_t*>(c.end.tcp), &buf, 1,
               [](uv_write_t* req, int) { delete static_cast<write_request*>(req->data); });
    });
  }

  std::size_t accepted_count() {
    return lt.run([this] { return accepted.size(); });
  }

  // As libraft does: closes the transport, waits for its callback, then closes the streams it was given.
  void close() {
    if (closed) return;
    closed = true;
    lt.run([this] {
      t()->close(t(), [](raft_uv_transport* t) { static_cast<endpoint*>(t->data)->transport_closed = true; });
    });
    EXPECT_TRUE(eventually(lt, [this] { return transport_closed; })) << "the close callback comes";
    lt.run([this] {
      auto close_stream = [](stream_end& s) {
        if (!s.tcp) return;
        uv_close(reinterpret_cast<uv_handle_t*>(s.tcp), [](uv_handle_t* h) {
          static_cast<stream_end*>(h->data)->closed = true;
          raft_free(h);
        });
      };
      for (auto& a : accepted) close_stream(a->end);
      for (auto& c : connections) close_stream(c->end);
    });
    eventually(lt, [this] {
      for (auto& a : accepted)
        if (!a->end.closed) return false;
      for (auto& c : connections)
        if (c->end.tcp && !c->end.closed) return false;
      return true;
    });
  }

  loop_thread& lt;
  std::uint64_t self_id;
  std::string address;
  raft_transport transport;
  int init_status = -1;
  bool closed = false, transport_closed = false;
  std::vector<std::unique_ptr<accepted_stream>> accepted;
  std::vector<std::shared_ptr<connection>> connections;
};

// A peer's hello, answered: the challenge's Ns, or empty when S closed instead.
std::string challenge_after(raw_connection& c, const raft_handshake& h, std::uint64_t server_id) {
  if (!c.send(h.hello())) return {};
  const std::string challenge = c.receive(64, 5s);
  if (challenge.size() != 64) return {};
  EXPECT_EQ(challenge.substr(32), h.server_answer(server_id, challenge.substr(0, 32))) << "S proves it holds the secret";
  return challenge.substr(0, 32);
}

TEST(storage_raft_transport, members_with_the_secret_connect_and_the_bytes_after_the_handshake_are_left_to_raft) {
  loop_thread lt;
  endpoint s(lt, 2, loopback(2));
  ASSERT_EQ(s.init_status, 0);
  ASSERT_EQ(s.listen(), 0);
  endpoint c(lt, 1, loopback(3));
  ASSERT_EQ(c.init_status, 0);

  auto to_s = c.connect(2, s.address);
  ASSERT_TRUE(c.connected(to_s));
  ASSERT_TRUE(eventually(lt, [&] { return s.accepted.size() == 1; }));
  EXPECT_EQ(s.accepted[0]->id, 1u);
  EXPECT_EQ(s.accepted[0]->address, c.address);
  c.send(*to_s, "raft's first message");
  EXPECT_TRUE(eventually(lt, [&] { return s.accepted[0]->end.received == "raft's first message"; }));

  // A peer whose proof and first Raft bytes come in one segment: the handshake reads the proof only.
  raft_handshake h{pool_secret, pool_id, 7, "127.0.0.9:4242"};
  raw_connection raw(s.address);
  ASSERT_TRUE(raw.connected());
  const std::string ns = challenge_after(raw, h, 2);
  ASSERT_EQ(ns.size(), 32u);
  ASSERT_TRUE(raw.send(h.proof(2, ns) + "and raft's bytes, every one"));
  ASSERT_TRUE(eventually(lt, [&] { return s.accepted.size() == 2 && s.accepted[1]->end.received.size() >= 27; }));
  EXPECT_EQ(s.accepted[1]->id, 7u);
  EXPECT_EQ(s.accepted[1]->address, "127.0.0.9:4242");
  EXPECT_EQ(lt.run([&] { return s.accepted[1]->end.received; }), "and raft's bytes, every one");
}

TEST(storage_raft_transport, a_peer_without_the_secret_is_refused_whichever_side_it_is_on) {
  loop_thread lt;
  endpoint s(lt, 2, loopback(2));
  ASSERT_EQ(s.listen(), 0);

  // A member with another secret connects: it refuses S's answer, S never hands anything over.
  endpoint other(lt, 1, loopback(3), options(std::string(32, 'x')));
  auto attempt = other.connect(2, s.address);
  ASSERT_TRUE(eventually(lt, [&] { return attempt->done; }));
  EXPECT_NE(attempt->status, 0);

  // An impostor that says it is member 1 and cannot prove it.
  raft_handshake impostor{std::string(32, 'x'), pool_id, 1, "127.0.0.3:1"};
  raw_connection raw(s.address);
  const std::string ns = challenge_after(raw, raft_handshake{pool_secret, pool_id, 1, "127.0.0.3:1", impostor.nc}, 2);
  ASSERT_EQ(ns.size(), 32u);
  ASSERT_TRUE(raw.send(impostor.proof(2, ns)));
  EXPECT_TRUE(raw.closed_by_peer(5s));

  // A proof recorded once answers no other challenge: S's nonce is new each time.
  raft_handshake member{pool_secret, pool_id, 1, "127.0.0.3:1"};
  std::string recorded_proof;
  {
    raw_connection first(s.address);
    const std::string first_ns = challenge_after(first, member, 2);
    recorded_proof = member.proof(2, first_ns);
  }
  raw_connection replay(s.address);
  const std::string replay_ns = challenge_after(replay, member, 2);
  ASSERT_EQ(replay_ns.size(), 32u);
  ASSERT_TRUE(replay.send(recorded_proof));
  EXPECT_TRUE(replay.closed_by_peer(5s));

  // A server without the secret: the member refuses its answer and never proves itself.
  const std::string fake_address = loopback(4);
  raw_listener fake(fake_address);
  ASSERT_TRUE(fake.listening());
  endpoint c(lt, 1, loopback(3));
  auto to_fake = c.connect(5, fake_address);
  raw_connection in = fake.accept(5s);
  ASSERT_TRUE(in.connected());
  const std::string hello = in.receive(34 + c.address.size() + 32, 5s);
  ASSERT_EQ(hello.size(), 34 + c.address.size() + 32);
  EXPECT_EQ(hello.substr(0, 24), "XRAFT001" + pool_id);
  raft_handshake as_c{std::string(32, 'x'), pool_id, 1, c.address, hello.substr(hello.size() - 32)};
  const std::string fake_ns(32, 'n');
  ASSERT_TRUE(in.send(fake_ns + as_c.server_answer(5, fake_ns)));
  EXPECT_EQ(in.receive(32, 2s), "") << "no proof for a server that proved nothing";
  EXPECT_TRUE(eventually(lt, [&] { return to_fake->done; }));
  EXPECT_NE(to_fake->status, 0);

  EXPECT_EQ(s.accepted_count(), 0u) << "nothing reached Raft";
}

TEST(storage_raft_transport, another_pool_an_id_not_admitted_or_a_malformed_hello_is_closed_without_an_answer) {
  loop_thread lt;
  endpoint s(lt, 2, loopback(2));
  ASSERT_EQ(s.listen(), 0);
  const raft_handshake good{pool_secret, pool_id, 1, "127.0.0.3:1"};
  const std::string nonce(32, 'n');
  struct bad_hello {
    const char* what;
    std::string bytes;
  };
  auto with_length = [&](std::uint64_t n, const std::string& address) {
    return "XRAFT001" + pool_id + raft_handshake::big_endian(1, 8) + raft_handshake::big_endian(n, 2) + address + nonce;
  };
  const std::vector<bad_hello> hellos = {
      {"another pool", raft_handshake{pool_secret, "another-pool-id!", 1, "127.0.0.3:1"}.hello()},
      {"an id not admitted", raft_handshake{pool_secret, pool_id, not_admitted, "127.0.0.3:1"}.hello()},
      {"id 0", raft_handshake{pool_secret, pool_id, 0, "127.0.0.3:1"}.hello()},
      {"an empty address", with_length(0, "")},
      {"an address length over 255", with_length(256, std::string(256, 'a'))},
      {"the largest address length", with_length(65535, std::string(1000, 'a'))},
      {"an address with a NUL", with_length(4, std::string("1:\0x", 4))},
      {"an address with a space", with_length(4, "1: x")},
      {"another magic", "XRAFT002" + good.hello().substr(8)},
      {"an HTTP request", "GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"},
      {"random bytes", raft_handshake::random_bytes(300)},
  };
  for (const auto& bad : hellos) {
    raw_connection raw(s.address);
    ASSERT_TRUE(raw.connected());
    raw.send(bad.bytes);  // may fail part way: S closes as soon as it knows
    EXPECT_EQ(raw.receive(64, 5s), "") << bad.what << ": no answer";
    EXPECT_TRUE(raw.closed_by_peer(0ms)) << bad.what << ": closed";
  }
  EXPECT_EQ(s.accepted_count(), 0u);

  endpoint c(lt, 1, loopback(3));
  EXPECT_TRUE(c.connected(c.connect(2, s.address))) << "S still serves members";
  EXPECT_TRUE(eventually(lt, [&] { return s.accepted.size() == 1; }));
}

TEST(storage_raft_transport, a_handshake_that_stalls_is_closed_at_its_deadline_on_either_side_and_blocks_no_other) {
  loop_thread lt;
  endpoint s(lt, 2, loopback(2), with_deadline(1s));
  ASSERT_EQ(s.listen(), 0);
  const raft_handshake member{pool_secret, pool_id, 1, "127.0.0.3:1"};

  auto started = steady::now();
  raw_connection partial(s.address);
  ASSERT_TRUE(partial.send(member.hello().substr(0, 10)));
  raw_connection no_proof(s.address);
  ASSERT_EQ(challenge_after(no_proof, member, 2).size(), 32u);

  // Meanwhile a member connects as usual.
  endpoint c(lt, 1, loopback(3), with_deadline(1s));
  EXPECT_TRUE(c.connected(c.connect(2, s.address), 500ms)) << "a stalled handshake holds up no other";

  EXPECT_TRUE(partial.closed_by_peer(5s));
  EXPECT_TRUE(no_proof.closed_by_peer(5s));
  const auto waited = steady::now() - started;
  EXPECT_GE(waited, 900ms);
  EXPECT_LT(waited, 3s);

  // A server that accepts and never answers: the member's connect fails at the deadline.
  const std::string silent_address = loopback(4);
  raw_listener silent(silent_address);
  ASSERT_TRUE(silent.listening());
  started = steady::now();
  auto to_silent = c.connect(5, silent_address);
  raw_connection held = silent.accept(5s);
  ASSERT_TRUE(held.connected());
  ASSERT_TRUE(eventually(lt, [&] { return to_silent->done; }, 5s));
  EXPECT_NE(to_silent->status, 0);
  EXPECT_GE(steady::now() - started, 900ms);
  EXPECT_EQ(s.accepted_count(), 1u);
}

TEST(storage_raft_transport, a_burst_of_a_hundred_connections_holds_32_handshakes_at_most_and_members_connect_after) {
  loop_thread lt;
  endpoint s(lt, 2, loopback(2), with_deadline(2s));
  ASSERT_EQ(s.listen(), 0);

  std::vector<raw_connection> burst;
  for (int i = 0; i < 100; ++i) {
    burst.emplace_back(s.address);
    ASSERT_TRUE(burst.back().connected());
  }
  const auto burst_at = steady::now();
  auto closed_now = [&] {
    int n = 0;
    for (auto& r : burst) n += r.closed_by_peer(0ms) ? 1 : 0;
    return n;
  };
  int closed = 0;
  for (auto until = steady::now() + 1500ms; steady::now() < until && closed < 68; std::this_thread::sleep_for(10ms)) closed = closed_now();
  EXPECT_EQ(closed, 68) << "beyond 32 handshakes under way, a connection is closed as soon as accepted";
  if (steady::now() - burst_at < 1500ms) {
    EXPECT_EQ(closed_now(), 68) << "the 32 others wait for their deadline";
  }

  // Once the held ones reach their deadline, members connect again.
  for (auto until = steady::now() + 5s; steady::now() < until && closed < 100; std::this_thread::sleep_for(20ms)) closed = closed_now();
  EXPECT_EQ(closed, 100);
  endpoint c(lt, 1, loopback(3));
  EXPECT_TRUE(c.connected(c.connect(2, s.address)));
}

TEST(storage_raft_transport, closing_cancels_connects_under_way_and_hands_over_nothing_after) {
  loop_thread lt;
  endpoint s(lt, 2, loopback(2));
  ASSERT_EQ(s.listen(), 0);
  endpoint c(lt, 1, loopback(3));

  const std::string silent_address = loopback(4);
  raw_listener silent(silent_address);
  auto pending = c.connect(5, silent_address);
  raw_connection held = silent.accept(5s);
  ASSERT_TRUE(held.connected());
  c.close();  // waits for the close callback
  EXPECT_TRUE(lt.run([&] { return pending->done; })) << "answered before the transport says it is closed";
  EXPECT_EQ(pending->status, RAFT_CANCELED);
  EXPECT_TRUE(held.closed_by_peer(5s));

  const raft_handshake member{pool_secret, pool_id, 1, "127.0.0.3:1"};
  raw_connection half(s.address);
  const std::string ns = challenge_after(half, member, 2);
  ASSERT_EQ(ns.size(), 32u);
  s.close();
  half.send(member.proof(2, ns));
  EXPECT_TRUE(half.closed_by_peer(5s));
  EXPECT_EQ(s.accepted_count(), 0u);
  EXPECT_FALSE(raw_connection(s.address).connected()) << "no longer listening";
}

TEST(storage_raft_transport, options_and_addresses_are_checked_before_anything_runs) {
  EXPECT_NE(raft_transport::invalid(options(std::string(31, 's'))), "");
  EXPECT_NE(raft_transport::invalid(options(pool_secret, "short")), "");
  auto no_rule = options();
  no_rule.admits = nullptr;
  EXPECT_NE(raft_transport::invalid(no_rule), "");
  EXPECT_EQ(raft_transport::invalid(options()), "");

  loop_thread lt;
  for (const std::string bad : {"127.0.0.1", "127.0.0.1:65536", "localhost:80", "::1:80", "[::1]", "127.0.0.1:8x"}) {
    endpoint e(lt, 1, bad);
    EXPECT_EQ(e.init_status, RAFT_INVALID) << bad;
    EXPECT_NE(std::string(e.t()->errmsg).find(bad), std::string::npos) << e.t()->errmsg;
  }
  // Port 0: any free port, for a host alone that never joins a pool (no member could reach it).
  endpoint any(lt, 4, "127.0.0.1:0");
  EXPECT_EQ(any.init_status, 0);
  EXPECT_EQ(any.listen(), 0);
  endpoint six(lt, 2, "[::1]:" + std::to_string(testing::free_port()));
  ASSERT_EQ(six.init_status, 0);
  if (six.listen() != 0) GTEST_SKIP() << "no IPv6 loopback here";
  endpoint c(lt, 1, loopback(3));
  EXPECT_TRUE(c.connected(c.connect(2, six.address))) << "a bracketed IPv6 address";
}

}  // namespace
}  // namespace xapid::storage
