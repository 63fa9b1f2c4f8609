#include "gateway/http/tls_certificate.hpp"
#include "common/clock.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace xapid::gateway {
namespace {

template <class T, void (*Free)(T*)>
using owned = std::unique_ptr<T, decltype([](T* p) { Free(p); })>;

bool write_pem(const std::string& path, mode_t mode, const std::function<bool(BIO*)>& write) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0) return false;
  ::close(fd);
  owned<BIO, BIO_free_all> bio(BIO_new_file(tmp.c_str(), "w"));
  if (!bio || !write(bio.get())) return false;
  bio.reset();
  return ::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

result<tls_files, std::string> ensure_tls_certificate(const std::string& data_dir, const std::string& hostname,
                                                      const std::string& address) {
  tls_files files{data_dir + "/xapid.pem", data_dir + "/xapid.key"};
  if (std::filesystem::exists(files.certificate) && std::filesystem::exists(files.key)) return files;

  owned<EVP_PKEY, EVP_PKEY_free> key(EVP_EC_gen("P-256"));
  if (!key) return fail(std::string("cannot generate a TLS key"));
  owned<X509, X509_free> cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), static_cast<long>(wall_seconds()));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 10L * 365 * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(hostname.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  std::string san = "DNS:" + hostname;
  if (!address.empty() && address != "0.0.0.0" && address != "::") san += ",IP:" + address;
  owned<X509_EXTENSION, X509_EXTENSION_free> ext(X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str()));
  if (ext) X509_add_ext(cert.get(), ext.get(), -1);
  if (!X509_sign(cert.get(), key.get(), EVP_sha256())) return fail(std::string("cannot sign the TLS certificate"));

  if (!write_pem(files.key, 0600, [&](BIO* b) {
        return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
      }))
    return fail("cannot write " + files.key);
  if (!write_pem(files.certificate, 0644, [&](BIO* b) { return PEM_write_bio_X509(b, cert.get()) == 1; }))
    return fail("cannot write " + files.certificate);
  return files;
}

}  // namespace xapid::gateway
