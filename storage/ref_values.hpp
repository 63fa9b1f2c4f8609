// The references a field's value holds, whatever its type (a ref, a set of refs, a map with refs
// for keys or values): rows copied into another database (a joining host's) and rows that leave
// one (an ejected host's) both rewrite every reference of a value through one walk.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "proto/wire/value.hpp"
#include "xapid/api/catalog.hpp"

namespace xapid::storage {

// Whether a value of type `t` can hold a reference.
bool holds_refs(const api::type_desc& t);

// `v` (of type `t`) with each reference it holds replaced by `to(class index, ref)`. A reference
// replaced by OpaqueRef:NULL leaves a set, and its entry leaves a map; a scalar one stays null.
using ref_rewrite = std::function<std::string(std::size_t cls, const std::string& ref)>;
wire::value rewrite_refs(const api::type_desc& t, const wire::value& v, const ref_rewrite& to);

}  // namespace xapid::storage
