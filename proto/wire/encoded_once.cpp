#include "proto/wire/encoded_once.hpp"

#include "proto/wire/jsonrpc.hpp"
#include "proto/wire/xmlrpc.hpp"

namespace xapid::wire {

const std::string* encoded_once::encoded(format f) const {
  const auto i = static_cast<std::size_t>(f);
  std::call_once(once_[i], [&] {
    if (f == format::xml_rpc) {
      xmlrpc::append_value(bytes_[i], value_);
      hint_.store(bytes_[i].size(), std::memory_order_relaxed);
    } else {
      jsonrpc::append_value(bytes_[i], value_);
    }
  });
  return &bytes_[i];
}

}  // namespace xapid::wire
