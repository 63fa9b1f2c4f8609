// The TLS between a pool's hosts: real gRPC servers on loopback, certificates made as a first
// boot makes them, clients pinned to a fingerprint, and callers known by theirs.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <memory>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "tests/support/peer_server.hpp"

namespace xapid::pool {
namespace {

using testing::peer_identity;
using testing::peer_server;

::grpc::Status ping(const std::shared_ptr<::grpc::Channel>& channel, peer::PingReply* reply) {
  ::grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  peer::PingRequest request;
  return peer::PoolPeer::NewStub(channel)->Ping(&context, request, reply);
}

::grpc::Status ping(const std::shared_ptr<::grpc::Channel>& channel) {
  peer::PingReply reply;
  return ping(channel, &reply);
}

// Two hosts of a pool, each with the certificate of its first boot; the server on 127.0.0.2.
struct peer_tls_two_hosts : ::testing::Test {
  peer_identity server_host{"server-host", "127.0.0.2"};
  peer_identity client_host{"client-host", "127.0.0.3"};
  peer_server server{"127.0.0.2", server_host.tls};
};

TEST_F(peer_tls_two_hosts, a_client_pinned_to_the_servers_certificate_is_served_and_known_by_its_own) {
  peer::PingReply reply;
  auto status = ping(peer_channel(server.address(), client_host.tls, server_host.fingerprint), &reply);
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_EQ(reply.host_uuid(), "recording-peer");
  EXPECT_EQ(server.service().callers(), std::vector<std::string>{client_host.fingerprint});
}

TEST_F(peer_tls_two_hosts, a_client_pinned_to_another_certificate_never_reaches_the_server) {
  peer_identity elsewhere{"elsewhere", "127.0.0.4"};
  auto status = ping(peer_channel(server.address(), client_host.tls, elsewhere.fingerprint));
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::UNAVAILABLE) << status.error_message();
  // The operator reads both fingerprints in the error.
  EXPECT_NE(status.error_message().find(server_host.fingerprint + ", not the pinned " + elsewhere.fingerprint),
            std::string::npos)
      << status.error_message();
  // Its own fingerprint pinned (the server pretending to be the client) is refused alike.
  status = ping(peer_channel(server.address(), client_host.tls, client_host.fingerprint));
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(server.service().callers().empty());
}

TEST_F(peer_tls_two_hosts, an_empty_pin_takes_any_server_for_the_first_call_of_a_join) {
  auto status = ping(peer_channel(server.address(), client_host.tls, ""));
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_EQ(server.service().callers(), std::vector<std::string>{client_host.fingerprint});
}

// Hosts are known by address and fingerprint: a certificate naming another host and address
// (a host renamed, or readdressed, since its first boot) is still the pinned one.
TEST(peer_tls, the_servers_name_and_address_in_its_certificate_are_not_checked) {
  peer_identity server_host{"a-name-nobody-resolves", "10.9.8.7"};
  peer_identity client_host{"client-host", "127.0.0.3"};
  peer_server server{"127.0.0.2", server_host.tls};
  auto status = ping(peer_channel(server.address(), client_host.tls, server_host.fingerprint));
  EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
}

TEST_F(peer_tls_two_hosts, a_client_without_tls_is_refused) {
  auto status = ping(::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials()));
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(server.service().callers().empty());
}

TEST_F(peer_tls_two_hosts, a_tls_client_without_a_certificate_is_refused) {
  ::grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_verify_server_certs(false);
  options.set_certificate_verifier(std::make_shared<::grpc::experimental::NoOpCertificateVerifier>());
  options.set_check_call_host(false);
  auto status = ping(::grpc::CreateChannel(server.address(), ::grpc::experimental::TlsCredentials(options)));
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(server.service().callers().empty());
}

// Bytes that are not TLS at all: the server closes the connection without a word of HTTP/2.
TEST_F(peer_tls_two_hosts, a_raw_tcp_client_is_disconnected) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(server.port()));
  to.sin_addr.s_addr = htonl(0x7f000002);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  ASSERT_EQ(::write(fd, preface.data(), preface.size()), static_cast<ssize_t>(preface.size()));
  std::string answer;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 20000), 1) << "the server kept the connection open";
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    answer.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  // At most a TLS alert record (content type 21), never an HTTP/2 frame.
  EXPECT_TRUE(answer.empty() || answer[0] == 21) << answer.size() << " bytes, first " << int(answer[0]);
  EXPECT_TRUE(server.service().callers().empty());
}

// A join carries the joining host's database: far over gRPC's default 4 MiB, both ways.
TEST_F(peer_tls_two_hosts, a_checkpoint_of_many_megabytes_crosses_both_ways) {
  peer::JoinRequest request;
  request.set_checkpoint(std::string(24 << 20, 'c'));
  peer::JoinReply reply;
  ::grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto status = peer::PoolPeer::NewStub(peer_channel(server.address(), client_host.tls, server_host.fingerprint))
                    ->Join(&context, request, &reply);
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_EQ(reply.secret().size(), std::size_t{24} << 20);
}

std::string openssl_fingerprint(const std::string& certificate_path) {
  const std::string command = "openssl x509 -noout -fingerprint -sha256 -in '" + certificate_path + "'";
  std::unique_ptr<FILE, decltype(&::pclose)> out(::popen(command.c_str(), "r"), &::pclose);
  if (!out) return {};
  char line[512] = {};
  if (!std::fgets(line, sizeof line, out.get())) return {};
  std::string text = line;  // "sha256 Fingerprint=AB:CD:...\n"
  text = text.substr(text.find('=') + 1);
  std::string digits;
  for (char c : text)
    if (std::isxdigit(static_cast<unsigned char>(c))) digits.push_back(static_cast<char>(std::tolower(c)));
  return digits;
}

TEST(peer_tls, the_fingerprint_is_what_openssl_shows) {
  peer_identity host{"host", "127.0.0.2"};
  const std::string expected = openssl_fingerprint(host.certificate_path);
  ASSERT_EQ(expected.size(), 64u);
  EXPECT_EQ(host.fingerprint, expected);
  // Surrounding whitespace is not part of the certificate.
  auto padded = certificate_fingerprint("\n  " + host.tls.certificate_pem + "\n\n");
  ASSERT_TRUE(padded.ok()) << padded.error();
  EXPECT_EQ(*padded, expected);
}

TEST(peer_tls, anything_but_one_pem_certificate_has_no_fingerprint) {
  peer_identity host{"host", "127.0.0.2"};
  peer_identity other{"other", "127.0.0.3"};
  const std::string& pem = host.tls.certificate_pem;
  std::string corrupt = pem;
  corrupt[corrupt.size() / 2] = '*';  // not a base64 digit
  std::string truncated = pem.substr(0, pem.size() / 2);
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"", "empty"},
      {"garbage", "garbage"},
      {host.tls.key_pem, "a private key"},
      {pem + other.tls.certificate_pem, "two certificates"},
      {pem + "trailing words\n", "text after"},
      {"Subject: host\n" + pem, "text before"},
      {corrupt, "a character that is not base64"},
      {truncated, "cut in half"},
      {std::string(certificate_pem_limit_bytes, ' ') + pem, "beyond the size limit"},
  };
  for (const auto& [text, what] : refused) {
    auto fingerprint = certificate_fingerprint(text);
    EXPECT_FALSE(fingerprint.ok()) << what;
  }
}

TEST(peer_tls, a_key_that_is_not_the_certificates_is_refused_at_reading) {
  peer_identity host{"host", "127.0.0.2"};
  peer_identity other{"other", "127.0.0.3"};
  auto mixed = read_host_tls(host.certificate_path, other.dir / "xapid.key");
  ASSERT_FALSE(mixed.ok());
  EXPECT_NE(mixed.error().find("is not the key of"), std::string::npos) << mixed.error();
  auto missing = read_host_tls(host.dir / "nothing.pem", host.dir / "xapid.key");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("nothing.pem"), std::string::npos) << missing.error();
}

}  // namespace
}  // namespace xapid::pool
