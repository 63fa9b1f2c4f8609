// Raft's own traffic between the members of a pool, refused to anyone who cannot prove it holds
// the pool's secret: a libraft 0.15 `raft_uv_transport` on libuv whose connections reach libraft
// only after a mutual HMAC-SHA256 challenge over fresh nonces. (libraft's own TCP transport
// authenticates nothing, and allocates an address length read from the wire.) After the handshake
// the bytes are plain Raft: their origin is proven, not their integrity nor their secrecy.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

struct raft_uv_transport;
struct uv_loop_s;

namespace xapid::storage {

// The handshake. C connects (libraft sends only on connections it opened), S accepts (and will
// only receive). Integers big-endian; Nc and Ns fresh from the CSPRNG for each connection, so an
// answer recorded once answers no other challenge:
//   C→S  "XRAFT001" | pool_id[16] | C's id u64 | address length u16 (1..255) | C's address | Nc[32]
//   S→C  Ns[32] | HMAC-SHA256(secret, "S" | pool_id | C's id | S's id | Nc | Ns)
//   C→S  HMAC-SHA256(secret, "C" | pool_id | C's id | C's address | S's id | Nc | Ns)
// C knows S's id from libraft's connect and checks S's answer before it proves itself. S refuses
// (closes, and logs the peer and the reason) another magic or pool, an address length out of
// bounds or an address not printable, an id `admits` refuses, a wrong proof. Every read is sized
// to the bytes the handshake still owes, so nothing of Raft's own traffic is read here.
struct raft_transport_options {
  std::string pool_secret;  // 32 bytes
  std::string pool_id;      // 16 bytes: the pool's uuid
  // Whether the member of this id may send to us; called on the loop thread, once per handshake.
  std::function<bool(std::uint64_t id)> admits;
  // A handshake not complete by then is closed, on either side (a connect that hangs included).
  std::chrono::milliseconds handshake_deadline{5000};
  // Incoming handshakes under way at once; a connection beyond is closed as soon as accepted.
  std::size_t max_incoming_handshakes = 32;
};

class raft_transport {
 public:
  // Nothing happens on `loop` before libraft initialises the transport (raft_init).
  raft_transport(uv_loop_s* loop, raft_transport_options options);
  // Once libraft closed the transport (raft_close's callback), or if it never initialised it.
  ~raft_transport();
  raft_transport(const raft_transport&) = delete;
  raft_transport& operator=(const raft_transport&) = delete;

  // For raft_uv_init; it lives as long as this object. Its `data` is libraft's.
  raft_uv_transport* get() noexcept;

  // Why these options cannot make a transport; empty when they can.
  static std::string invalid(const raft_transport_options& options);

  struct state;  // raft_transport.cpp

 private:
  std::unique_ptr<state> state_;
};

}  // namespace xapid::storage
