// The host's TLS certificate: DIR/xapid.pem and its key DIR/xapid.key (0600). Made self-signed
// on first boot (ECDSA P-256, ten years, the host's name and address as subject alternative
// names); an operator replaces both files to use a certificate of their own.
#pragma once

#include <string>

#include "common/result.hpp"

namespace xapid::gateway {

struct tls_files {
  std::string certificate;
  std::string key;
};

result<tls_files, std::string> ensure_tls_certificate(const std::string& data_dir, const std::string& hostname,
                                                      const std::string& address);

}  // namespace xapid::gateway
