// The database at one generation: every table with its rows, tombstones and indexes. A
// published state is immutable and shared by readers; the writer derives the next state by
// applying log entries to a copy (persistent maps make the copy O(1) and each update O(log n)).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/api/convert.hpp"
#include "common/persistent_map.hpp"
#include "storage/log_entry.hpp"
#include "storage/schema.hpp"

namespace xapid::storage {

// A row: the typed record of its table's class (see api::record_ops) and its generations.
struct row {
  std::shared_ptr<const void> record;
  generation created = 0;
  generation modified = 0;  // of its own fields: a derived set's change (a VBD joining) leaves it
  generation deleted = 0;  // non-zero: a tombstone, kept for event consumers until collected
};
using row_ptr = std::shared_ptr<const row>;

enum class change_kind : std::uint8_t { add, mod, del };

struct change {
  std::uint32_t cls;
  std::string ref;
  change_kind kind;
  generation gen;
  // Only a derived field changed (a VBD joined the VM's VBDs): the row has its event, but
  // nothing of it is stored, so nothing is written to disk.
  bool derived_only = false;
};

struct table_data {
  persistent_map<row_ptr> rows;                       // by ref, tombstones included
  persistent_map<std::string> by_uuid;                // uuid -> ref, live rows
  persistent_map<persistent_set> by_name_label;       // name_label -> refs, live rows
  // Per schema ref_fields entry: target ref -> the live rows pointing at it. For the scalar side
  // of a one-to-many pair, the set is also the partner's derived field (VBD.VM -> VM.VBDs).
  std::vector<persistent_map<persistent_set>> by_ref;
  std::size_t live = 0;                                // live rows
};

class state {
 public:
  state();

  generation gen() const noexcept { return gen_; }

  // Live rows only; tombstones are invisible to these.
  const row* find(std::size_t cls, std::string_view ref) const;
  template <class R>
  const R* get(std::string_view ref) const {
    const row* r = find(schema::get().class_of<R>(), ref);
    return r ? static_cast<const R*>(r->record.get()) : nullptr;
  }
  std::optional<std::string> ref_by_uuid(std::size_t cls, std::string_view uuid) const;
  std::vector<std::string> refs_by_name_label(std::size_t cls, std::string_view label) const;
  // Refs of the live rows of `cls` whose scalar ref field `field` points at `target`.
  std::vector<std::string> refs_by_field(std::size_t cls, std::size_t field, std::string_view target) const;
  // The same, typed and by field name: refs_where<api::vbd>("VM", vm) is a VM's VBDs.
  template <class R>
  std::vector<std::string> refs_where(std::string_view field, std::string_view target) const {
    const std::size_t cls = schema::get().class_of<R>();
    return refs_by_field(cls, *schema::get().field_index(cls, field), target);
  }
  // The first live row of class R, for classes of one object (the pool), or nullptr.
  template <class R>
  const R* first() const {
    const R* out = nullptr;
    for_each(schema::get().class_of<R>(), [&](const std::string&, const row& r) {
      out = static_cast<const R*>(r.record.get());
      return false;
    });
    return out;
  }
  // Visits the live rows of class R as records, fn(ref, record); stop by returning false.
  template <class R, class F>
  void for_each_of(F&& fn) const {
    for_each(schema::get().class_of<R>(), [&](const std::string& ref, const row& r) {
      return fn(ref, *static_cast<const R*>(r.record.get()));
    });
  }
  std::size_t count(std::size_t cls) const;  // live rows
  // Every row of `cls`, tombstones included (`deleted`), for a walk that stops and resumes with
  // an iterator (an answer written in pieces); for_each is the faster way through all at once.
  const persistent_map<row_ptr>& rows(std::size_t cls) const { return tables_.at(cls)->rows; }
  // Visits live rows (with tombstones if asked); stop by returning false.
  void for_each(std::size_t cls, const std::function<bool(const std::string&, const row&)>& fn,
                bool with_tombstones = false) const;
  // The row including a tombstone (for event consumers).
  const row* find_any(std::size_t cls, std::string_view ref) const;

  // Applying an entry. validate_and_normalize checks one operation against this state (and a
  // precondition: the operation fails with the precondition's error) and puts it in the form
  // apply takes (the whole record of a create, add/remove as the new set or map); apply then
  // changes this state. Both are deterministic: the same operation on the same state gives the
  // same rows or the same error on every member. A rejected operation leaves the state unchanged.
  api::status validate_and_normalize(op& o) const;
  void apply(const op& o, generation gen, std::vector<change>& changes);
  void set_generation(generation g) noexcept { gen_ = g; }

  // Loading: put a row as it was stored (rebuilding indexes; its derived fields are cleared),
  // then, once every row is in, fill the derived fields from the indexes; drop collected
  // tombstones.
  void load_row(std::size_t cls, std::string ref, row r);
  void derive_after_load();
  void erase_tombstone(std::size_t cls, const std::string& ref);

 private:
  friend class applier;
  // A table this state may change: a copy of it first if another state shares it. States are
  // copied once per applied batch; sharing the tables makes that copy one pointer per class.
  table_data& writable(std::size_t cls);
  generation gen_ = 0;
  std::vector<std::shared_ptr<const table_data>> tables_;
};

}  // namespace xapid::storage
