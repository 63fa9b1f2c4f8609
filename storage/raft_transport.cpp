#include "storage/raft_transport.hpp"

#include <uv.h>
extern "C" {  // libraft's headers do not say so themselves
#include <raft.h>
#include <raft/uv.h>
}
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <list>
#include <string_view>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "common/ids.hpp"

namespace xapid::storage {
namespace {

constexpr std::string_view magic = "XRAFT001";
constexpr std::size_t secret_bytes = 32, pool_id_bytes = 16, nonce_bytes = 32, mac_bytes = 32;
constexpr std::size_t hello_head_bytes = magic.size() + pool_id_bytes + 8 + 2;
constexpr std::size_t max_address_bytes = 255;
constexpr std::size_t max_hello_bytes = hello_head_bytes + max_address_bytes + nonce_bytes;
constexpr std::size_t challenge_bytes = nonce_bytes + mac_bytes;
// A refusal is logged at once, the same one again (same peer host, same reason) at most every
// 10 s with the count of those in between, and never more than 16 lines a second: a member with
// another secret retries four times a second, and a peer may connect as fast as it can.
constexpr std::uint64_t same_refusal_logged_every_ms = 10000;
constexpr unsigned refusals_logged_per_s = 16;
constexpr std::size_t refusals_remembered = 1024;
constexpr int listen_backlog = 128;  // a burst of connections waits in the kernel, not in SYN retries

using nonce = std::array<unsigned char, nonce_bytes>;
using mac = std::array<unsigned char, mac_bytes>;

void put_be(unsigned char* out, std::uint64_t v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<unsigned char>(v >> (8 * (n - 1 - i)));
}
std::uint64_t get_be(const unsigned char* in, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | in[i];
  return v;
}
std::string be64(std::uint64_t v) {
  std::string out(8, '\0');
  put_be(reinterpret_cast<unsigned char*>(out.data()), v, 8);
  return out;
}
std::string_view view(const unsigned char* p, std::size_t n) { return {reinterpret_cast<const char*>(p), n}; }

// HMAC-SHA256(secret, the parts one after the other).
mac sign(const std::string& secret, std::initializer_list<std::string_view> parts) {
  std::string message;
  for (auto part : parts) message.append(part);
  mac out{};
  unsigned int len = 0;
  if (!::HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(message.data()),
              message.size(), out.data(), &len) ||
      len != mac_bytes) {
    // Never go on with an all-zero MAC: anyone could send one.
    spdlog::critical("raft.transport.fail_stop reason=\"HMAC-SHA256 failed\"");
    std::abort();
  }
  return out;
}

bool printable(std::string_view s) {
  for (char c : s)
    if (c < 0x21 || c > 0x7e) return false;
  return !s.empty();
}

// "IPv4:port" or "[IPv6]:port". Port 0 listens on any free port: a host that never joins a pool
// (no member could reach it there); a connection to it fails.
bool parse_address(std::string_view text, sockaddr_storage& out) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size() || text.size() - colon - 1 > 5) return false;
  unsigned port = 0;
  for (char c : text.substr(colon + 1)) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return false;
  std::string host(text.substr(0, colon));
  out = {};
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    return uv_ip6_addr(host.substr(1, host.size() - 2).c_str(), static_cast<int>(port), reinterpret_cast<sockaddr_in6*>(&out)) == 0;
  return uv_ip4_addr(host.c_str(), static_cast<int>(port), reinterpret_cast<sockaddr_in*>(&out)) == 0;
}

std::string peer_of(const uv_tcp_t* tcp) {
  sockaddr_storage a{};
  int len = sizeof a;
  char ip[INET6_ADDRSTRLEN] = {};
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&a), &len) != 0 || uv_ip_name(reinterpret_cast<sockaddr*>(&a), ip, sizeof ip) != 0)
    return "?";
  if (a.ss_family == AF_INET6) return "[" + std::string(ip) + "]:" + std::to_string(ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port));
  return std::string(ip) + ":" + std::to_string(ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port));
}

void* must_allocate(std::size_t n) {
  void* p = raft_malloc(n);
  if (!p) {
    spdlog::critical("raft.transport.fail_stop reason=\"out of memory\"");
    std::abort();
  }
  return p;
}

// One connection until it is handed to libraft: incoming (we are S) or outgoing (we are C).
struct handshake {
  enum class step { connecting, sending_hello, reading_hello_head, reading_hello_rest, sending_challenge, reading_proof, reading_challenge, sending_proof };

  raft_transport::state* owner = nullptr;
  bool outgoing = false;
  uv_tcp_t* tcp = nullptr;  // from raft_malloc: libraft closes and frees it once it holds it
  std::string peer;         // for logs: the address connected to, or the one connecting
  step at = step::connecting;
  bool closing = false;
  bool listed = false;  // in the owner's `under_way`, at `place`
  std::list<handshake*>::iterator place;
  std::uint64_t deadline_ms = 0;  // on the loop's clock
  bool counted = false;           // among the owner's incoming handshakes
  int status = 0;                 // for libraft's connect callback, once closed

  std::uint64_t client_id = 0, server_id = 0;
  std::size_t address_bytes = 0;
  std::string client_address;
  nonce nc{}, ns{};
  std::array<unsigned char, max_hello_bytes> in{};  // the bytes of the step being read
  std::size_t got = 0, want = 0;
  std::array<unsigned char, max_hello_bytes> out{};  // what is being written
  uv_write_t write{};
  uv_connect_t connect{};
  raft_uv_connect* req = nullptr;  // outgoing: libraft's request, answered once
  raft_uv_connect_cb cb = nullptr;
};

}  // namespace

struct raft_transport::state {
  state(uv_loop_t* l, raft_transport_options o) : loop(l), opt(std::move(o)) {}

  raft_uv_transport iface{};
  uv_loop_t* const loop;
  const raft_transport_options opt;
  std::uint64_t self_id = 0;
  std::string self_address;
  sockaddr_storage self_socket{};
  bool initialised = false;  // listener and timer are handles of the loop
  uv_tcp_t listener{};
  uv_timer_t timer{};  // the first deadline of `under_way`
  raft_uv_accept_cb accept_cb = nullptr;
  bool closing = false;
  bool closed = false;
  raft_uv_transport_close_cb close_cb = nullptr;
  int handles_closing = 0;
  std::list<handshake*> under_way;  // oldest first, so deadlines come in this order
  std::size_t incoming = 0;
  struct refusal_seen {
    std::uint64_t logged_ms = 0;
    unsigned since = 0;  // not logged since
  };
  std::unordered_map<std::string, refusal_seen> refusals;
  std::uint64_t log_second = 0;
  unsigned logged_this_second = 0;

  static state& of(raft_uv_transport* t) { return *static_cast<state*>(t->impl); }

  int error(int code, const std::string& why) {
    std::snprintf(iface.errmsg, sizeof iface.errmsg, "%s", why.c_str());
    return code;
  }

  // ---------------------------------------------------------------- libraft's interface

  int init(std::uint64_t id, const char* address) {
    if (std::string why = raft_transport::invalid(opt); !why.empty()) return error(RAFT_INVALID, why);
    self_address = address ? address : "";
    if (self_address.size() > max_address_bytes || !printable(self_address) || !parse_address(self_address, self_socket))
      return error(RAFT_INVALID, "the address \"" + self_address + "\" is not IPv4:port nor [IPv6]:port");
    self_id = id;
    if (int rv = uv_tcp_init(loop, &listener); rv != 0) return error(RAFT_IOERR, std::string("cannot make a socket: ") + uv_strerror(rv));
    uv_timer_init(loop, &timer);
    listener.data = timer.data = this;
    initialised = true;
    return 0;
  }

  int listen(raft_uv_accept_cb cb) {
    accept_cb = cb;
    int rv = uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&self_socket), 0);
    if (rv == 0)
      rv = uv_listen(reinterpret_cast<uv_stream_t*>(&listener), listen_backlog,
                     [](uv_stream_t* l, int status) { static_cast<state*>(l->data)->on_connection(status); });
    if (rv != 0) {
      spdlog::error("raft.transport.cannot_listen address={} reason=\"{}\"", self_address, uv_strerror(rv));
      return error(RAFT_IOERR, "cannot listen on " + self_address + ": " + uv_strerror(rv));
    }
    return 0;
  }

  int connect(raft_uv_connect* req, std::uint64_t id, const char* address, raft_uv_connect_cb cb) {
    sockaddr_storage to{};
    if (!address || !parse_address(address, to))
      return error(RAFT_NOCONNECTION, std::string("member ") + std::to_string(id) + "'s address \"" + (address ? address : "") +
                                          "\" is not IPv4:port nor [IPv6]:port");
    auto* h = new handshake;
    h->owner = this;
    h->outgoing = true;
    h->peer = address;
    h->server_id = id;
    h->tcp = static_cast<uv_tcp_t*>(must_allocate(sizeof(uv_tcp_t)));
    uv_tcp_init(loop, h->tcp);
    h->tcp->data = h;
    h->connect.data = h;
    const int rv = uv_tcp_connect(&h->connect, h->tcp, reinterpret_cast<const sockaddr*>(&to), [](uv_connect_t* c, int status) {
      auto* h = static_cast<handshake*>(c->data);
      if (!h->closing) h->owner->on_connected(*h, status);
    });
    if (rv != 0) {
      close_handshake(*h, 0);  // libraft hears of it from the answer, not from a callback
      return error(RAFT_NOCONNECTION, "cannot connect to " + std::string(address) + ": " + uv_strerror(rv));
    }
    req->cb = cb;
    h->req = req;
    h->cb = cb;
    list(*h);
    return 0;
  }

  void close(raft_uv_transport_close_cb cb) {
    closing = true;
    close_cb = cb;
    while (!under_way.empty()) close_handshake(*under_way.front(), RAFT_CANCELED);
    if (initialised) {
      handles_closing += 2;
      auto closed_cb = [](uv_handle_t* h) {
        auto* s = static_cast<state*>(h->data);
        --s->handles_closing;
        s->maybe_closed();
      };
      uv_close(reinterpret_cast<uv_handle_t*>(&listener), closed_cb);
      uv_close(reinterpret_cast<uv_handle_t*>(&timer), closed_cb);
    }
    maybe_closed();
  }

  void maybe_closed() {
    if (!closing || closed || handles_closing != 0 || !under_way.empty()) return;
    closed = true;
    if (close_cb) close_cb(&iface);
  }

  // ---------------------------------------------------------------- every handshake

  void list(handshake& h) {
    h.deadline_ms = uv_now(loop) + static_cast<std::uint64_t>(opt.handshake_deadline.count());
    h.place = under_way.insert(under_way.end(), &h);
    h.listed = true;
    if (under_way.size() == 1) arm_timer();
  }
  void unlist(handshake& h) {
    if (h.listed) under_way.erase(h.place);
    h.listed = false;
    if (h.counted) --incoming;
    h.counted = false;
  }
  void arm_timer() {
    if (closing) return;
    if (under_way.empty()) {
      uv_timer_stop(&timer);
      return;
    }
    const std::uint64_t now = uv_now(loop), due = under_way.front()->deadline_ms;
    uv_timer_start(&timer, [](uv_timer_t* t) { static_cast<state*>(t->data)->on_deadline(); }, due > now ? due - now : 0, 0);
  }
  void on_deadline() {
    const std::uint64_t now = uv_now(loop);
    while (!under_way.empty() && under_way.front()->deadline_ms <= now)
      refuse(*under_way.front(), "no complete handshake within " + std::to_string(opt.handshake_deadline.count()) + " ms");
    arm_timer();
  }

  // Closes the connection; libraft's connect callback (if any) hears `status` once it is closed.
  void close_handshake(handshake& h, int status) {
    if (h.closing) return;
    h.closing = true;
    h.status = status;
    unlist(h);
    ++handles_closing;
    // Any write or connect of ours still pending is called back (cancelled) before this.
    uv_close(reinterpret_cast<uv_handle_t*>(h.tcp), [](uv_handle_t* handle) {
      auto* h = static_cast<handshake*>(handle->data);
      state& s = *h->owner;
      raft_free(h->tcp);
      if (h->cb) h->cb(h->req, nullptr, h->status);
      delete h;
      --s.handles_closing;
      s.maybe_closed();
    });
  }

  void refuse(handshake& h, std::string_view reason) {
    log_refusal(h, reason);
    close_handshake(h, RAFT_NOCONNECTION);
  }

  void log_refusal(const handshake& h, std::string_view reason) {
    const std::uint64_t now = uv_now(loop);
    // An incoming peer's port changes with each connection; its host does not.
    std::string key = (h.outgoing ? h.peer : h.peer.substr(0, h.peer.rfind(':'))) + " " + std::string(reason);
    if (refusals.size() >= refusals_remembered && !refusals.count(key)) {
      std::erase_if(refusals, [&](const auto& r) { return now - r.second.logged_ms >= same_refusal_logged_every_ms; });
      if (refusals.size() >= refusals_remembered) refusals.clear();
    }
    refusal_seen& seen = refusals[std::move(key)];
    if (now / 1000 != log_second) {
      log_second = now / 1000;
      logged_this_second = 0;
    }
    const bool logged_lately = seen.logged_ms != 0 && now - seen.logged_ms < same_refusal_logged_every_ms;
    if (logged_lately || logged_this_second >= refusals_logged_per_s) {
      ++seen.since;
      return;
    }
    ++logged_this_second;
    if (h.outgoing)
      spdlog::warn("raft.transport.refused to={} id={} reason=\"{}\" not_logged_before={}", h.peer, h.server_id, reason, seen.since);
    else
      spdlog::warn("raft.transport.refused from={} reason=\"{}\" not_logged_before={}", h.peer, reason, seen.since);
    seen = {now, 0};
  }

  // Reads exactly `n` bytes into `h.in`, then goes on at `next`.
  void read_exactly(handshake& h, std::size_t n, handshake::step next) {
    h.at = next;
    h.got = 0;
    h.want = n;
    const int rv = uv_read_start(
        reinterpret_cast<uv_stream_t*>(h.tcp),
        [](uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
          auto* h = static_cast<handshake*>(handle->data);
          *buf = uv_buf_init(reinterpret_cast<char*>(h->in.data() + h->got), static_cast<unsigned>(h->want - h->got));
        },
        [](uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
          auto* h = static_cast<handshake*>(stream->data);
          if (h->closing || nread == 0) return;
          state& s = *h->owner;
          if (nread < 0)
            return s.refuse(*h, nread == UV_EOF ? "the peer closed the connection during the handshake"
                                                : std::string("cannot read: ") + uv_strerror(static_cast<int>(nread)));
          h->got += static_cast<std::size_t>(nread);
          if (h->got < h->want) return;
          uv_read_stop(stream);  // not a byte more: what follows the handshake is libraft's
          s.on_read(*h);
        });
    if (rv != 0) refuse(h, std::string("cannot read: ") + uv_strerror(rv));
  }

  // Writes the first `n` bytes of `h.out`, then goes on at `next`.
  void write(handshake& h, std::size_t n, handshake::step next) {
    h.at = next;
    h.write.data = &h;
    uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(h.out.data()), static_cast<unsigned>(n));
    const int rv = uv_write(&h.write, reinterpret_cast<uv_stream_t*>(h.tcp), &buf, 1, [](uv_write_t* w, int status) {
      auto* h = static_cast<handshake*>(w->data);
      if (h->closing) return;
      if (status != 0) return h->owner->refuse(*h, std::string("cannot write: ") + uv_strerror(status));
      h->owner->on_written(*h);
    });
    if (rv != 0) refuse(h, std::string("cannot write: ") + uv_strerror(rv));
  }

  void on_read(handshake& h) {
    switch (h.at) {
      case handshake::step::reading_hello_head: return on_hello_head(h);
      case handshake::step::reading_hello_rest: return on_hello_rest(h);
      case handshake::step::reading_proof: return on_proof(h);
      case handshake::step::reading_challenge: return on_challenge(h);
      default: return refuse(h, "read at a step that reads nothing");  // unreachable
    }
  }
  void on_written(handshake& h) {
    switch (h.at) {
      case handshake::step::sending_hello: return read_exactly(h, challenge_bytes, handshake::step::reading_challenge);
      case handshake::step::sending_challenge: return read_exactly(h, mac_bytes, handshake::step::reading_proof);
      case handshake::step::sending_proof: return hand_over_outgoing(h);
      default: return refuse(h, "wrote at a step that writes nothing");  // unreachable
    }
  }

  // ---------------------------------------------------------------- S: accepting

  void on_connection(int status) {
    if (closing) return;
    if (status < 0) {
      spdlog::warn("raft.transport.accept_failed address={} reason=\"{}\"", self_address, uv_strerror(status));
      return;
    }
    auto* h = new handshake;
    h->owner = this;
    h->tcp = static_cast<uv_tcp_t*>(must_allocate(sizeof(uv_tcp_t)));
    uv_tcp_init(loop, h->tcp);
    h->tcp->data = h;
    if (int rv = uv_accept(reinterpret_cast<uv_stream_t*>(&listener), reinterpret_cast<uv_stream_t*>(h->tcp)); rv != 0)
      return refuse(*h, std::string("cannot accept: ") + uv_strerror(rv));
    h->peer = peer_of(h->tcp);
    if (incoming >= opt.max_incoming_handshakes)
      return refuse(*h, "already " + std::to_string(incoming) + " handshakes under way, the most at once");
    ++incoming;
    h->counted = true;
    list(*h);
    read_exactly(*h, hello_head_bytes, handshake::step::reading_hello_head);
  }

  void on_hello_head(handshake& h) {
    const unsigned char* p = h.in.data();
    if (view(p, magic.size()) != magic) return refuse(h, "not a pool member's handshake");
    p += magic.size();
    if (view(p, pool_id_bytes) != opt.pool_id) return refuse(h, "another pool's handshake");
    p += pool_id_bytes;
    h.client_id = get_be(p, 8);
    p += 8;
    h.address_bytes = get_be(p, 2);
    if (h.address_bytes == 0 || h.address_bytes > max_address_bytes)
      return refuse(h, "an address of " + std::to_string(h.address_bytes) + " bytes (1 to " + std::to_string(max_address_bytes) + ")");
    if (h.client_id == 0 || !opt.admits(h.client_id))
      return refuse(h, "it says it is member " + std::to_string(h.client_id) + ", which is not in this member's configuration");
    read_exactly(h, h.address_bytes + nonce_bytes, handshake::step::reading_hello_rest);
  }

  void on_hello_rest(handshake& h) {
    h.client_address.assign(reinterpret_cast<const char*>(h.in.data()), h.address_bytes);
    if (!printable(h.client_address)) return refuse(h, "an address that is not printable text");
    std::memcpy(h.nc.data(), h.in.data() + h.address_bytes, nonce_bytes);
    random_bytes(h.ns.data(), nonce_bytes);
    const mac answer = sign(opt.pool_secret, {"S", opt.pool_id, be64(h.client_id), be64(self_id), view(h.nc.data(), nonce_bytes),
                                              view(h.ns.data(), nonce_bytes)});
    std::memcpy(h.out.data(), h.ns.data(), nonce_bytes);
    std::memcpy(h.out.data() + nonce_bytes, answer.data(), mac_bytes);
    write(h, challenge_bytes, handshake::step::sending_challenge);
  }

  void on_proof(handshake& h) {
    const mac expected = sign(opt.pool_secret, {"C", opt.pool_id, be64(h.client_id), h.client_address, be64(self_id),
                                                view(h.nc.data(), nonce_bytes), view(h.ns.data(), nonce_bytes)});
    if (CRYPTO_memcmp(expected.data(), h.in.data(), mac_bytes) != 0)
      return refuse(h, "member " + std::to_string(h.client_id) + "'s proof is wrong: it does not hold this pool's secret");
    unlist(h);
    uv_tcp_t* tcp = h.tcp;
    const std::uint64_t id = h.client_id;
    const std::string address = std::move(h.client_address);
    delete &h;
    tcp->data = nullptr;
    uv_tcp_nodelay(tcp, 1);
    accept_cb(&iface, id, address.c_str(), reinterpret_cast<uv_stream_t*>(tcp));
  }

  // ---------------------------------------------------------------- C: connecting

  void on_connected(handshake& h, int status) {
    if (status != 0) return close_handshake(h, RAFT_NOCONNECTION);  // down: libraft retries, nothing to log
    unsigned char* p = h.out.data();
    std::memcpy(p, magic.data(), magic.size());
    p += magic.size();
    std::memcpy(p, opt.pool_id.data(), pool_id_bytes);
    p += pool_id_bytes;
    put_be(p, self_id, 8);
    p += 8;
    put_be(p, self_address.size(), 2);
    p += 2;
    std::memcpy(p, self_address.data(), self_address.size());
    p += self_address.size();
    random_bytes(h.nc.data(), nonce_bytes);
    std::memcpy(p, h.nc.data(), nonce_bytes);
    p += nonce_bytes;
    write(h, static_cast<std::size_t>(p - h.out.data()), handshake::step::sending_hello);
  }

  void on_challenge(handshake& h) {
    std::memcpy(h.ns.data(), h.in.data(), nonce_bytes);
    const auto nc = view(h.nc.data(), nonce_bytes), ns = view(h.ns.data(), nonce_bytes);
    const mac expected = sign(opt.pool_secret, {"S", opt.pool_id, be64(self_id), be64(h.server_id), nc, ns});
    if (CRYPTO_memcmp(expected.data(), h.in.data() + nonce_bytes, mac_bytes) != 0)
      return refuse(h, "its answer is wrong: it is not member " + std::to_string(h.server_id) + " of this pool, or does not hold its secret");
    const mac proof = sign(opt.pool_secret, {"C", opt.pool_id, be64(self_id), self_address, be64(h.server_id), nc, ns});
    std::memcpy(h.out.data(), proof.data(), mac_bytes);
    write(h, mac_bytes, handshake::step::sending_proof);
  }

  void hand_over_outgoing(handshake& h) {
    unlist(h);
    uv_tcp_t* tcp = h.tcp;
    raft_uv_connect* req = h.req;
    raft_uv_connect_cb cb = h.cb;
    delete &h;
    tcp->data = nullptr;
    uv_tcp_nodelay(tcp, 1);
    cb(req, reinterpret_cast<uv_stream_t*>(tcp), 0);
  }
};

raft_transport::raft_transport(uv_loop_s* loop, raft_transport_options options)
    : state_(std::make_unique<state>(loop, std::move(options))) {
  raft_uv_transport& t = state_->iface;
  t.impl = state_.get();
  t.init = [](raft_uv_transport* t, raft_id id, const char* address) { return state::of(t).init(id, address); };
  t.listen = [](raft_uv_transport* t, raft_uv_accept_cb cb) { return state::of(t).listen(cb); };
  t.connect = [](raft_uv_transport* t, raft_uv_connect* req, raft_id id, const char* address, raft_uv_connect_cb cb) {
    return state::of(t).connect(req, id, address, cb);
  };
  t.close = [](raft_uv_transport* t, raft_uv_transport_close_cb cb) { state::of(t).close(cb); };
}

raft_transport::~raft_transport() {
  if (state_->initialised && !state_->closed) {
    // Its handles are still the loop's: freeing them now would corrupt the loop.
    spdlog::critical("raft.transport.fail_stop reason=\"destroyed before libraft closed it\"");
    std::abort();
  }
}

raft_uv_transport* raft_transport::get() noexcept { return &state_->iface; }

std::string raft_transport::invalid(const raft_transport_options& o) {
  if (o.pool_secret.size() != secret_bytes)
    return "the pool's secret must be " + std::to_string(secret_bytes) + " bytes (it is " + std::to_string(o.pool_secret.size()) + ")";
  if (o.pool_id.size() != pool_id_bytes)
    return "the pool's id must be " + std::to_string(pool_id_bytes) + " bytes (it is " + std::to_string(o.pool_id.size()) + ")";
  if (!o.admits) return "no rule says which members may connect";
  if (o.handshake_deadline.count() <= 0) return "the handshake deadline must be positive";
  if (o.max_incoming_handshakes == 0) return "at least one incoming handshake must be allowed at once";
  return {};
}

}  // namespace xapid::storage
