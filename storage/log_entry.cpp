#include "storage/log_entry.hpp"

#include "proto/wire/binary.hpp"

namespace xapid::storage {

// An entry is the binary form of [gen, time_ms, [[kind, cls, ref, field, key, value], ...]].
std::string encode(const log_entry& e) {
  wire::array ops;
  ops.reserve(e.ops.size());
  for (const op& o : e.ops)
    ops.emplace_back(wire::array{wire::value(static_cast<std::int64_t>(o.kind)), wire::value(static_cast<std::int64_t>(o.cls)),
                                 wire::value(o.ref), wire::value(static_cast<std::int64_t>(o.field)), wire::value(o.key),
                                 o.value});
  return wire::binary::encode(wire::value(wire::array{wire::value(static_cast<std::int64_t>(e.gen)),
                                                      wire::value(e.time_ms), wire::value(std::move(ops))}));
}

std::string encode_error(const std::vector<std::string>& description) {
  wire::array a;
  for (const auto& d : description) a.emplace_back(d);
  return wire::binary::encode(wire::value(std::move(a)));
}

std::vector<std::string> decode_error(std::string_view bytes) {
  std::vector<std::string> out;
  auto v = wire::binary::decode(bytes, wire::limits{});
  if (v && v->as_array())
    for (const auto& d : *v->as_array())
      if (d.as_string()) out.push_back(*d.as_string());
  return out;
}

wire::decoded<log_entry> decode_log_entry(std::string_view bytes) {
  auto bad = [](const char* why) { return fail(wire::decode_error{-32700, std::string("corrupt log entry: ") + why}); };
  wire::limits lim;
  lim.max_body_bytes = std::size_t{1} << 31;
  auto v = wire::binary::decode(bytes, lim);
  if (!v) return fail(v.error());
  const wire::array* top = v->as_array();
  if (!top || top->size() != 3 || !(*top)[0].as_int() || !(*top)[1].as_int() || !(*top)[2].as_array())
    return bad("wrong shape");
  log_entry e;
  e.gen = static_cast<generation>(*(*top)[0].as_int());
  e.time_ms = *(*top)[1].as_int();
  for (const auto& item : *(*top)[2].as_array()) {
    const wire::array* o = item.as_array();
    if (!o || o->size() != 6 || !(*o)[0].as_int() || !(*o)[1].as_int() || !(*o)[2].as_string() || !(*o)[3].as_int() ||
        !(*o)[4].as_string())
      return bad("wrong operation shape");
    std::int64_t kind = *(*o)[0].as_int();
    if (kind < 0 || kind > static_cast<std::int64_t>(op_kind::set_private)) return bad("unknown operation");
    e.ops.push_back(op{static_cast<op_kind>(kind), static_cast<std::uint32_t>(*(*o)[1].as_int()), *(*o)[2].as_string(),
                       static_cast<std::uint32_t>(*(*o)[3].as_int()), *(*o)[4].as_string(), (*o)[5]});
  }
  return e;
}

}  // namespace xapid::storage
