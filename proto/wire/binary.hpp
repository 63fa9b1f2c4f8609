// A compact, deterministic binary form of wire values: the bytes of database rows and log
// entries. The same value always gives the same bytes, so replicas that apply the same log
// entries hold byte-identical databases.
#pragma once

#include <string>
#include <string_view>

#include "proto/wire/codec.hpp"

namespace xapid::wire::binary {

void append(std::string& out, const value& v);
// The start of an array of `count` values, for writers that append the elements one by one.
void append_array_header(std::string& out, std::size_t count);
std::string encode(const value& v);
// Decodes exactly one value filling all of `bytes`; corrupt input is a decode_error, never a crash.
decoded<value> decode(std::string_view bytes, const limits& lim = {});

}  // namespace xapid::wire::binary
