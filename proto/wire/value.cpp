#include "proto/wire/value.hpp"

namespace xapid::wire {

const char* kind_name(kind k) noexcept {
  switch (k) {
    case kind::nil: return "nil";
    case kind::boolean: return "boolean";
    case kind::integer: return "integer";
    case kind::int32: return "int32";
    case kind::floating: return "floating";
    case kind::string: return "string";
    case kind::datetime: return "datetime";
    case kind::array: return "array";
    case kind::structure: return "structure";
  }
  return "unknown";
}

}  // namespace xapid::wire
