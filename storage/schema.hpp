// The database schema, derived from the generated catalog: one table per class, its indexed
// fields, and the bound-field pairs (seed section 2.2) that storage keeps consistent.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "proto/api/convert.hpp"
#include "xapid/api/catalog.hpp"
#include "xapid/api/types.hpp"

namespace xapid::storage {

// The other side of a bound field.
struct binding {
  std::size_t other_class;
  std::size_t other_field;
  // One-to-many: the "one" side is a scalar ref that callers set; the "many" side is a set that
  // storage derives from it and callers cannot write. Many-to-many: both sides are sets, and a
  // change to one is mirrored on the other.
  bool derived;  // this field is the derived "many" side of a one-to-many pair
  bool many_to_many;
};

struct table_schema {
  std::size_t index;  // in api::all_classes()
  const api::class_desc* desc;
  const api::record_ops* ops;
  std::optional<std::size_t> uuid_field;
  std::optional<std::size_t> name_label_field;
  std::vector<std::size_t> ref_fields;                // scalar ref fields, each indexed
  std::vector<std::optional<binding>> bindings;       // per field
  std::vector<std::size_t> ref_target;                // per field: class index of ref(C)/set(ref(C)), or npos
  bool secret_refs = false;  // a ref of this class is a credential (a session's): drawn from the CSPRNG
  // Whether objects of this class have events (xapi's gen_events): sessions and secrets do not.
  // A deleted row of a class without events keeps no tombstone.
  bool has_events = true;
  // What a copy of an object does not take from the original (reset_for_copy): its operations
  // and its derived sets.
  std::vector<std::size_t> copy_resets;
};

class schema {
 public:
  static const schema& get();

  const std::vector<table_schema>& tables() const noexcept { return tables_; }
  const table_schema& table(std::size_t cls) const { return tables_.at(cls); }
  std::optional<std::size_t> class_index(std::string_view name) const noexcept;
  std::optional<std::size_t> field_index(std::size_t cls, std::string_view field) const noexcept;

  template <class R>
  std::size_t class_of() const {
    return *class_index(R::api_class);
  }

 private:
  schema();
  std::vector<table_schema> tables_;
};

inline constexpr std::size_t no_class = static_cast<std::size_t>(-1);

// What one field may hold, whatever its type: a map or a set at most `max_entries`, a string
// (or a map key) at most `max_string_bytes`. A value beyond is VALUE_NOT_SUPPORTED(Class.field,
// its start, why): no client can make a commit or an answer cost without bound.
struct value_bounds {
  static constexpr std::size_t max_entries = 10000;
  static constexpr std::size_t max_string_bytes = 1u << 20;
};
api::status check_bounds(const table_schema& ts, std::size_t field, const wire::value& v);

// A record about to be created as a copy of another (a clone, a snapshot, an import) loses
// what belongs to the original object alone: its operations (allowed_operations,
// current_operations) and its derived sets (VM.VBDs: the database fills them from the rows that
// point at the new object).
void reset_for_copy(std::size_t cls, void* record);
template <class R>
R as_copy(R record) {
  reset_for_copy(schema::get().class_of<R>(), &record);
  return record;
}

// A record as the array of its field values in catalog order: the compact form of rows on disk
// and of records in log entries (field names are implied by the schema version).
wire::value record_to_fields(const table_schema& ts, const void* rec);
api::status record_from_fields(const table_schema& ts, void* rec, const wire::value& fields);

}  // namespace xapid::storage
