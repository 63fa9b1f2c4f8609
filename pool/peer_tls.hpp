// The TLS of the service between a pool's hosts (proto/grpc/pool_peer.proto): every host presents
// its own self-signed certificate (made on first boot, gateway/http/tls_certificate) and no CA
// vouches for anyone. A peer is known by its certificate's SHA-256 fingerprint, pinned in the pool
// database when it joins, as xapi pins its pool's certificates.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <grpcpp/channel.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>

#include "common/result.hpp"

namespace xapid::pool {

// A host's certificate and private key, PEM.
struct host_tls {
  std::string certificate_pem;
  std::string key_pem;
};

// A join carries the joining host's whole database (a checkpoint): both sides accept messages this
// big (gRPC's default receive limit is 4 MiB).
inline constexpr int peer_message_limit_bytes = 256 << 20;

// Text longer than this is not a host's certificate (a peer's certificate comes from the network).
inline constexpr std::size_t certificate_pem_limit_bytes = 64 << 10;

// The certificate and key files (DIR/xapid.pem, DIR/xapid.key), checked to be one certificate and
// the key of it: a mismatch would otherwise show only as failed handshakes with every peer.
result<host_tls, std::string> read_host_tls(const std::string& certificate_path, const std::string& key_path);

// SHA-256 of the certificate's DER, lowercase hex (64 characters). Anything but one PEM
// certificate (with nothing around it but whitespace) is an error.
result<std::string, std::string> certificate_fingerprint(std::string_view pem);

// The server side: presents the host's certificate and requires one from every client, which no
// CA verifies: each call's handler checks the caller's fingerprint itself (members are pinned in
// the pool database; a joining host is authenticated by the pool.join password instead). The TLS
// handshake proves that the client holds the key of the certificate it presents.
std::shared_ptr<::grpc::ServerCredentials> peer_server_credentials(const host_tls& tls);

// Listens on `address` with peer_server_credentials and the peers' message limit; `selected_port`
// as ServerBuilder::AddListeningPort (0 after BuildAndStart when the address could not be bound).
void add_peer_listener(::grpc::ServerBuilder& builder, const std::string& address, const host_tls& tls,
                       int* selected_port = nullptr);

// The fingerprint of the certificate the caller presented on this call's connection; empty when
// there is none (a server not made with peer_server_credentials).
std::string caller_fingerprint(const ::grpc::ServerContextBase& context);

// The client side: presents the host's certificate; connects only to a server whose certificate
// has the fingerprint `pinned` (empty: any server — only for the first call of a join, which the
// master authenticates by the user's password, as xapi's join does before certificates are
// exchanged). The server's name is not checked: hosts are known by address and fingerprint. A
// server with another certificate fails every call with UNAVAILABLE, and sees no call.
std::shared_ptr<::grpc::Channel> peer_channel(const std::string& address, const host_tls& tls,
                                            const std::string& pinned);

}  // namespace xapid::pool
