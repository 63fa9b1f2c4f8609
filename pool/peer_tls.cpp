#include "pool/peer_tls.hpp"

#include <cstdlib>
#include <functional>
#include <vector>

#include <grpc/grpc_security_constants.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/channel_arguments.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/hex.hpp"
#include "common/private_file.hpp"

namespace xapid::pool {
namespace {

template <class T, void (*Free)(T*)>
using owned = std::unique_ptr<T, decltype([](T* p) { Free(p); })>;

std::string_view trim_space(std::string_view s) {
  constexpr std::string_view space = " \t\r\n";
  auto first = s.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(space) - first + 1);
}

struct openssl_free {
  void operator()(void* p) const { OPENSSL_free(p); }
};

// OpenSSL keeps its errors in a per-thread queue that gRPC's own TLS code reads on the same
// threads (the verifier and handlers run there): what a failed parse leaves must not stay.
struct openssl_errors_cleared {
  ~openssl_errors_cleared() { ERR_clear_error(); }
};

// The DER inside `pem`, which must be exactly one PEM certificate block with nothing around it
// but whitespace (PEM_read_bio_X509 alone would skip text before it and ignore what follows).
// The DER itself is not decoded here: OpenSSL 3.0 takes about 200 us to decode a certificate
// (its public key goes through the provider decoders) and 1 us to hash one.
result<std::string, std::string> certificate_der(std::string_view pem) {
  constexpr std::string_view begin = "-----BEGIN CERTIFICATE-----";
  if (pem.size() > certificate_pem_limit_bytes)
    return fail("a certificate of more than " + std::to_string(certificate_pem_limit_bytes) + " bytes");
  std::string_view text = trim_space(pem);
  if (!text.starts_with(begin)) return fail(std::string("not a PEM certificate"));
  openssl_errors_cleared cleared;
  owned<BIO, BIO_free_all> bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) return fail(std::string("out of memory reading a certificate"));
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long size = 0;
  const bool read = PEM_read_bio(bio.get(), &name, &header, &data, &size) == 1;
  std::unique_ptr<char, openssl_free> name_owned(name), header_owned(header);
  std::unique_ptr<unsigned char, openssl_free> data_owned(data);
  if (!read || std::string_view(name) != "CERTIFICATE" || *header != '\0' || size <= 0)
    return fail(std::string("not a PEM certificate"));
  char* rest = nullptr;
  long rest_size = BIO_get_mem_data(bio.get(), &rest);
  if (rest_size > 0 && !trim_space({rest, static_cast<std::size_t>(rest_size)}).empty())
    return fail(std::string("more than one PEM certificate"));
  return std::string(reinterpret_cast<const char*>(data), static_cast<std::size_t>(size));
}

// The certificate in `der`, which it must fill exactly.
result<owned<X509, X509_free>, std::string> decode_certificate(const std::string& der) {
  openssl_errors_cleared cleared;
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  owned<X509, X509_free> certificate(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!certificate || p != reinterpret_cast<const unsigned char*>(der.data() + der.size()))
    return fail(std::string("not a certificate (its DER does not decode)"));
  return certificate;
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr) != 1) std::abort();
  return hex({reinterpret_cast<const char*>(digest), size});
}

// The fingerprint of a certificate a peer presented in a handshake, as gRPC hands it over (PEM
// it wrote itself): hashed, not decoded again — gRPC's handshake decoded it, and proved the peer
// holds its key. Empty for anything else.
std::string presented_fingerprint(::grpc::string_ref pem) {
  auto der = certificate_der({pem.data(), pem.size()});
  return der ? sha256_hex(*der) : std::string();
}

std::shared_ptr<::grpc::experimental::CertificateProviderInterface> identity_of(const host_tls& tls) {
  return std::make_shared<::grpc::experimental::StaticDataCertificateProvider>(
      std::vector<::grpc::experimental::IdentityKeyCertPair>{{tls.key_pem, tls.certificate_pem}});
}

// Runs once per connection's handshake, after the server proved it holds the key of the
// certificate it presented (verify_server_certs is off: no CA is asked about it).
class pinned_server_verifier final : public ::grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit pinned_server_verifier(std::string pinned) : pinned_(std::move(pinned)) {}

  bool Verify(::grpc::experimental::TlsCustomVerificationCheckRequest* request, std::function<void(::grpc::Status)>,
              ::grpc::Status* sync_status) override {
    if (pinned_.empty()) {
      *sync_status = ::grpc::Status::OK;
      return true;
    }
    const std::string seen = presented_fingerprint(request->peer_cert());
    if (seen != pinned_)
      *sync_status = ::grpc::Status(::grpc::StatusCode::UNAUTHENTICATED,
                                    "the peer's certificate is " + (seen.empty() ? "none" : seen) +
                                        ", not the pinned " + pinned_);
    else
      *sync_status = ::grpc::Status::OK;
    return true;  // decided here, synchronously
  }

  void Cancel(::grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  const std::string pinned_;
};

}  // namespace

result<std::string, std::string> certificate_fingerprint(std::string_view pem) {
  auto der = certificate_der(pem);
  if (!der) return fail(std::move(der).error());
  if (auto certificate = decode_certificate(*der); !certificate) return fail(std::move(certificate).error());
  return sha256_hex(*der);
}

result<host_tls, std::string> read_host_tls(const std::string& certificate_path, const std::string& key_path) {
  auto certificate_pem = read_whole_file(certificate_path);
  if (!certificate_pem) return fail("cannot read " + certificate_path);
  auto key_pem = read_whole_file(key_path);
  if (!key_pem) return fail("cannot read " + key_path);
  auto der = certificate_der(*certificate_pem);
  if (!der) return fail(certificate_path + ": " + der.error());
  auto certificate = decode_certificate(*der);
  if (!certificate) return fail(certificate_path + ": " + certificate.error());
  openssl_errors_cleared cleared;
  owned<BIO, BIO_free_all> bio(BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  owned<EVP_PKEY, EVP_PKEY_free> key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return fail(key_path + ": not a PEM private key");
  if (X509_check_private_key(certificate->get(), key.get()) != 1)
    return fail(key_path + " is not the key of " + certificate_path);
  return host_tls{std::move(*certificate_pem), std::move(*key_pem)};
}

std::shared_ptr<::grpc::ServerCredentials> peer_server_credentials(const host_tls& tls) {
  ::grpc::experimental::TlsServerCredentialsOptions options(identity_of(tls));
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  return ::grpc::experimental::TlsServerCredentials(options);
}

void add_peer_listener(::grpc::ServerBuilder& builder, const std::string& address, const host_tls& tls,
                       int* selected_port) {
  builder.AddListeningPort(address, peer_server_credentials(tls), selected_port);
  builder.SetMaxReceiveMessageSize(peer_message_limit_bytes);
  builder.SetMaxSendMessageSize(peer_message_limit_bytes);
}

std::string caller_fingerprint(const ::grpc::ServerContextBase& context) {
  std::shared_ptr<const ::grpc::AuthContext> auth = context.auth_context();
  if (!auth) return {};
  std::vector<::grpc::string_ref> pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.size() != 1) return {};
  return presented_fingerprint(pems.front());
}

std::shared_ptr<::grpc::Channel> peer_channel(const std::string& address, const host_tls& tls,
                                            const std::string& pinned) {
  ::grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(identity_of(tls));
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(false);
  options.set_certificate_verifier(
      ::grpc::experimental::ExternalCertificateVerifier::Create<pinned_server_verifier>(pinned));
  options.set_check_call_host(false);
  ::grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(peer_message_limit_bytes);
  args.SetMaxSendMessageSize(peer_message_limit_bytes);
  // While a call is under way (a forwarded operation waits minutes for a guest), the channel
  // pings every 10 s and gives up on a peer silent for 5 s more: a host cut off without a
  // reset (powered off, partitioned) ends its calls instead of holding them for ever. The
  // peer service admits pings that often (peer_service.cpp).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return ::grpc::CreateCustomChannel(address, ::grpc::experimental::TlsCredentials(options), args);
}

}  // namespace xapid::pool
