// Sample wire values of any datamodel type, built from the generated catalog, so tests and
// benchmarks exercise every class and field without listing them by hand.
#pragma once

#include <string>

#include "proto/api/ref.hpp"
#include "proto/wire/value.hpp"
#include "xapid/api/catalog.hpp"

namespace xapid::testing {

// A deterministic value of type `t`; different `seed`s give different values. Map keys come
// out in the order the typed maps keep them, so typed round trips compare equal.
wire::value sample_value(const api::type_desc& t, int seed);

// A full record of class `c`: every field set to a sample of its type.
wire::value sample_record(const api::class_desc& c, int seed);

// A record with the elements of each of its sets in sorted order: sets have no order, and the
// derived ones (VM.VBDs) come back in the database's order, so records compare through this.
wire::value with_sets_sorted(wire::value record);

}  // namespace xapid::testing
