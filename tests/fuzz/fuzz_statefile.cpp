// Fuzzes the HA statefile's block decoders (a block is whatever another host, or a corrupted
// shared SR, left there): any block must decode or be refused cleanly, and whatever decodes
// must survive encode + decode unchanged. The input's first byte picks the header's or a
// lease's magic; the rest is sealed with a valid checksum so the fields behind it are reached.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ha/statefile.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace xapid::ha;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool header = data[0] & 1;
  std::string bytes = header ? "XAPIDHA1" : "XAPIDLS1";
  bytes.append(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string block = seal_block(bytes);
  XAPID_FUZZ_CHECK(block.size() == statefile_block, "a sealed block is one block", bytes, block);

  if (auto h = decode_header(block)) {
    const std::string first = encode_header(*h);
    auto again = decode_header(first);
    XAPID_FUZZ_CHECK(again.has_value(), "header does not decode again", first, "");
    XAPID_FUZZ_CHECK(again->pool_uuid == h->pool_uuid && again->hosts == h->hosts, "header", first, encode_header(*again));
  }
  if (auto l = decode_lease(block)) {
    const std::string first = encode_lease(*l);
    auto again = decode_lease(first);
    XAPID_FUZZ_CHECK(again.has_value(), "lease does not decode again", first, "");
    XAPID_FUZZ_CHECK(*again == *l, "lease", first, encode_lease(*again));
  }
  // A torn block (any byte changed after sealing) is refused.
  std::string torn = block;
  torn[size % (statefile_block - 8)] ^= 0x5a;
  XAPID_FUZZ_CHECK(!decode_header(torn) && !decode_lease(torn), "a torn block decodes", block, torn);
  return 0;
}
