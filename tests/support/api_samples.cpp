#include <algorithm>
#include "tests/support/api_samples.hpp"

#include <cstdio>

namespace xapid::testing {
namespace {

std::string sample_ref(int seed) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "OpaqueRef:00000000-0000-4000-8000-%012d", seed < 0 ? -seed : seed);
  return buf;
}

// The i-th key of a map, increasing with i in the typed map's order.
std::string sample_key(const api::type_desc& key, int i) {
  switch (key.kind) {
    case api::type_kind::int_: return std::to_string(i + 1);
    case api::type_kind::ref: return sample_ref(i);
    case api::type_kind::enum_: {
      auto values = api::find_enum(key.name)->values;
      return std::string(values[static_cast<std::size_t>(i) % values.size()]);
    }
    default: return "key-" + std::to_string(i);
  }
}

}  // namespace

wire::value sample_value(const api::type_desc& t, int seed) {
  switch (t.kind) {
    case api::type_kind::string: return wire::value("text " + std::to_string(seed) + " <&> \xc3\xa9");
    case api::type_kind::int_: return wire::value(std::int64_t{1} << 40 | seed);
    case api::type_kind::float_: return wire::value(0.25 + seed);
    case api::type_kind::bool_: return wire::value(seed % 2 == 1);
    case api::type_kind::datetime:
      return wire::value(wire::datetime{api::format_iso8601(api::datetime{1700000000 + seed})});
    case api::type_kind::void_: return wire::value("");
    case api::type_kind::ref: return wire::value(sample_ref(seed));
    case api::type_kind::record: return sample_record(*api::find_class(t.name), seed);
    case api::type_kind::enum_: {
      auto values = api::find_enum(t.name)->values;
      return wire::value(std::string(values[static_cast<std::size_t>(seed) % values.size()]));
    }
    case api::type_kind::set: return wire::value(wire::array{sample_value(*t.arg1, seed), sample_value(*t.arg1, seed + 1)});
    case api::type_kind::map: {
      wire::structure s;
      std::string first = sample_key(*t.arg1, 0), second = sample_key(*t.arg1, 1);
      s.emplace_back(first, sample_value(*t.arg2, seed));
      if (second != first) s.emplace_back(second, sample_value(*t.arg2, seed + 1));
      return wire::value(std::move(s));
    }
  }
  return {};
}

wire::value sample_record(const api::class_desc& c, int seed) {
  wire::structure s;
  s.reserve(c.fields.size());
  int i = 0;
  for (const auto& f : c.fields) s.emplace_back(std::string(f.name), sample_value(*f.type, seed + i++));
  return wire::value(std::move(s));
}

wire::value with_sets_sorted(wire::value record) {
  if (auto* members = record.as_struct())
    for (auto& m : *members)
      if (auto* items = m.second.as_array())
        std::stable_sort(items->begin(), items->end(), [](const wire::value& a, const wire::value& b) {
          const std::string* x = a.as_string();
          const std::string* y = b.as_string();
          return x && y ? *x < *y : false;
        });
  return record;
}

}  // namespace xapid::testing
