#include "storage/state.hpp"

#include "proto/api/convert.hpp"

#include <algorithm>
#include <atomic>

namespace xapid::storage {
namespace {

const std::string null_ref(api::null_ref_text);

std::shared_ptr<const void> own(const table_schema& ts, void* rec) {
  return std::shared_ptr<const void>(rec, [d = ts.ops->destroy](const void* p) { d(const_cast<void*>(p)); });
}

std::string_view text_field(const table_schema& ts, const void* rec, std::size_t f) {
  return ts.ops->text_field(rec, f);
}

bool is_null_ref(std::string_view r) { return r.empty() || r == api::null_ref_text; }

// Adds or removes `ref` in the set of refs under `key`; returns whether the set changed.
bool set_insert(persistent_map<persistent_set>& m, std::string_view key, const std::string& ref) {
  const persistent_set* cur = m.find(key);
  if (cur && cur->find(ref)) return false;
  persistent_set next = cur ? *cur : persistent_set{};
  next.set(ref, unit{});
  m.set(std::string(key), std::move(next));
  return true;
}

bool set_erase(persistent_map<persistent_set>& m, std::string_view key, const std::string& ref) {
  const persistent_set* cur = m.find(key);
  if (!cur || !cur->find(ref)) return false;
  if (cur->size() == 1) {
    m.erase(key);
    return true;
  }
  persistent_set next = *cur;
  next.erase(ref);
  m.set(std::string(key), std::move(next));
  return true;
}

std::vector<std::string> refs_in(const persistent_set* s) {
  std::vector<std::string> out;
  if (!s) return out;
  out.reserve(s->size());
  s->for_each([&](const std::string& ref, unit) {
    out.push_back(ref);
    return true;
  });
  return out;
}

api::api_error handle_invalid(std::size_t cls, std::string_view ref) {
  return api::errors::HANDLE_INVALID(std::string(schema::get().table(cls).desc->name), std::string(ref));
}

}  // namespace

// The writer's mutations of a state, with the bound fields kept consistent.
class applier {
 public:

  // `derive`: whether a change of a scalar ref field updates its partner's derived field now
  // (false while loading, when derive_after_load fills them all at the end).
  applier(state& s, generation gen, std::vector<change>& changes, bool derive)
      : s_(s), gen_(gen), changes_(changes), derive_(derive) {}

  void index(std::size_t cls, const std::string& ref, const void* rec, bool add) {
    const table_schema& ts = schema::get().table(cls);
    table_data& t = s_.writable(cls);
    if (ts.uuid_field) {
      std::string_view u = text_field(ts, rec, *ts.uuid_field);
      if (add) {
        t.by_uuid.set(std::string(u), ref);
      } else if (const std::string* owner = t.by_uuid.find(u); owner && *owner == ref) {
        t.by_uuid.erase(u);
      }
    }
    if (ts.name_label_field) {
      std::string_view label = text_field(ts, rec, *ts.name_label_field);
      add ? set_insert(t.by_name_label, label, ref) : set_erase(t.by_name_label, label, ref);
    }
    for (std::size_t i = 0; i < ts.ref_fields.size(); ++i) {
      std::string_view target = text_field(ts, rec, ts.ref_fields[i]);
      if (is_null_ref(target)) continue;
      if (add ? set_insert(t.by_ref[i], target, ref) : set_erase(t.by_ref[i], target, ref)) derive(cls, i, target);
    }
  }

  // Moves the index entries of one row from its old record to its new one, touching only the
  // indexes whose key changed.
  void reindex(std::size_t cls, const std::string& ref, const void* before, const void* after) {
    const table_schema& ts = schema::get().table(cls);
    table_data& t = s_.writable(cls);
    if (ts.uuid_field) {
      std::string_view u0 = text_field(ts, before, *ts.uuid_field), u1 = text_field(ts, after, *ts.uuid_field);
      if (u0 != u1) {
        if (const std::string* owner = t.by_uuid.find(u0); owner && *owner == ref) t.by_uuid.erase(u0);
        t.by_uuid.set(std::string(u1), ref);
      }
    }
    if (ts.name_label_field) {
      std::string_view l0 = text_field(ts, before, *ts.name_label_field), l1 = text_field(ts, after, *ts.name_label_field);
      if (l0 != l1) {
        set_erase(t.by_name_label, l0, ref);
        set_insert(t.by_name_label, l1, ref);
      }
    }
    for (std::size_t i = 0; i < ts.ref_fields.size(); ++i) {
      std::string_view r0 = text_field(ts, before, ts.ref_fields[i]), r1 = text_field(ts, after, ts.ref_fields[i]);
      if (r0 == r1) continue;
      if (!is_null_ref(r0) && set_erase(t.by_ref[i], r0, ref)) derive(cls, i, r0);
      if (!is_null_ref(r1) && set_insert(t.by_ref[i], r1, ref)) derive(cls, i, r1);
    }
  }

  // The rows pointing at `target` through ref field i of `cls` changed: if that field is the
  // scalar side of a one-to-many pair, the target's derived field becomes the index's new set
  // (shared, O(1)) and the target has a "mod" event, with nothing written to disk.
  void derive(std::size_t cls, std::size_t i, std::string_view target_text) {
    if (!derive_) return;
    const table_schema& ts = schema::get().table(cls);
    const auto& b = ts.bindings[ts.ref_fields[i]];
    if (!b || b->many_to_many) return;
    // A copy: the text may be inside a record that the row replaced below held (a self-reference).
    const std::string target(target_text);
    const row_ptr* partner = s_.tables_[b->other_class]->rows.find(target);
    if (!partner || (*partner)->deleted) return;
    const table_schema& pts = schema::get().table(b->other_class);
    std::shared_ptr<void> rec = pts.ops->make_shared((*partner)->record.get());
    const persistent_set* refs = s_.tables_[cls]->by_ref[i].find(target);
    pts.ops->set_derived(rec.get(), b->other_field, refs ? *refs : persistent_set{});
    // `modified` stays: it is the generation of the row's own fields, which a writer's
    // precondition (expect_unchanged) compares; a partner joining is no conflict.
    s_.writable(b->other_class).rows.set(
        target, std::make_shared<row>(row{std::move(rec), (*partner)->created, (*partner)->modified, 0}));
    changes_.push_back(change{static_cast<std::uint32_t>(b->other_class), target, change_kind::mod, gen_, true});
  }

  // Replaces a live row's record, keeping indexes current; many-to-many fields are the caller's
  // job. The new row is in place before the indexes move, so a partner derived meanwhile (a row
  // that points at itself) is derived from it.
  void replace(std::size_t cls, const std::string& ref, std::shared_ptr<const void> rec) {
    table_data& t = s_.writable(cls);
    const row_ptr old = *t.rows.find(ref);
    const std::shared_ptr<const void> after = rec;
    t.rows.set(ref, std::make_shared<row>(row{std::move(rec), old->created, gen_, 0}));
    changes_.push_back(change{static_cast<std::uint32_t>(cls), ref, change_kind::mod, gen_});
    reindex(cls, ref, old->record.get(), after.get());
  }

  void set_field(std::size_t cls, const std::string& ref, std::size_t field, const wire::value& v) {
    const table_schema& ts = schema::get().table(cls);
    const row* r = s_.find(cls, ref);
    if (!r) return;  // a bound partner that no longer exists: nothing to keep consistent
    std::shared_ptr<void> rec = ts.ops->make_shared(r->record.get());
    auto st = ts.ops->set_field(rec.get(), field, v);
    (void)st;  // values reaching apply were validated (or derived from validated ones)
    replace(cls, ref, std::move(rec));
  }

  // Adds or removes `elem` in the set field of a bound partner.
  void edit_set(std::size_t cls, const std::string& ref, std::size_t field, const std::string& elem, bool add) {
    const table_schema& ts = schema::get().table(cls);
    const row* r = s_.find(cls, ref);
    if (!r) return;
    wire::value cur = ts.ops->get_field(r->record.get(), field);
    wire::array items = cur.as_array() ? *cur.as_array() : wire::array{};
    auto it = std::find(items.begin(), items.end(), wire::value(elem));
    if (add == (it != items.end())) return;
    if (add) items.emplace_back(elem);
    else items.erase(it);
    set_field(cls, ref, field, wire::value(std::move(items)));
  }

  static std::vector<std::string> refs_of(const wire::value& v) {
    std::vector<std::string> out;
    if (auto* s = v.as_string()) {
      if (!is_null_ref(*s)) out.push_back(*s);
    } else if (auto* a = v.as_array()) {
      for (const auto& e : *a)
        if (e.as_string() && !is_null_ref(*e.as_string())) out.push_back(*e.as_string());
    }
    return out;
  }

  // Mirrors the change of a many-to-many field from `before` to `after` on its partners (the
  // one-to-many pairs are derived through the indexes instead: see derive).
  void propagate(std::size_t cls, const std::string& ref, std::size_t field, const wire::value& before,
                 const wire::value& after) {
    const auto& b = schema::get().table(cls).bindings[field];
    if (!b || !b->many_to_many) return;
    auto old_refs = refs_of(before), new_refs = refs_of(after);
    for (const auto& t : old_refs)
      if (std::find(new_refs.begin(), new_refs.end(), t) == new_refs.end())
        edit_set(b->other_class, t, b->other_field, ref, false);
    for (const auto& t : new_refs)
      if (std::find(old_refs.begin(), old_refs.end(), t) == old_refs.end())
        edit_set(b->other_class, t, b->other_field, ref, true);
  }

  void apply(const op& o) {
    const table_schema& ts = schema::get().table(o.cls);
    table_data& t = s_.writable(o.cls);
    switch (o.kind) {
      case op_kind::create: {
        std::shared_ptr<void> owned = ts.ops->make_shared(nullptr);
        void* rec = owned.get();
        // Entries carry the record positionally (see validate_and_normalize).
        auto st = o.value.as_array() ? record_from_fields(ts, rec, o.value) : ts.ops->from_value(rec, o.value);
        (void)st;
        t.rows.set(o.ref, std::make_shared<row>(row{owned, gen_, gen_, 0}));
        ++t.live;
        changes_.push_back(change{o.cls, o.ref, change_kind::add, gen_});
        index(o.cls, o.ref, rec, true);
        for (std::size_t f = 0; f < ts.bindings.size(); ++f)
          if (ts.bindings[f] && ts.bindings[f]->many_to_many)
            propagate(o.cls, o.ref, f, wire::value(), ts.ops->get_field(rec, f));
        break;
      }
      case op_kind::set: {
        const row* r = s_.find(o.cls, o.ref);
        if (!r) return;
        // Only a many-to-many field needs its old value (to mirror the change on its partners):
        // reading it for every set would copy a large map or set for nothing.
        const auto& b = ts.bindings[o.field];
        wire::value before = b && b->many_to_many ? ts.ops->get_field(r->record.get(), o.field) : wire::value();
        set_field(o.cls, o.ref, o.field, o.value);
        if (b && b->many_to_many) propagate(o.cls, o.ref, o.field, before, o.value);
        break;
      }
      case op_kind::destroy: {
        const row* r = s_.find(o.cls, o.ref);
        if (!r) return;
        auto rec = r->record;
        // The row becomes a tombstone first: a partner re-derived below no longer sees it.
        t.rows.set(o.ref, std::make_shared<row>(row{rec, r->created, gen_, gen_}));
        --t.live;
        index(o.cls, o.ref, rec.get(), false);
        for (std::size_t f = 0; f < ts.bindings.size(); ++f) {
          const auto& b = ts.bindings[f];
          if (!b || !(b->derived || b->many_to_many)) continue;
          wire::value v = ts.ops->get_field(rec.get(), f);
          if (b->derived) {
            // Rows that point here through the scalar side now point nowhere.
            for (const auto& other : refs_of(v))
              set_field(b->other_class, other, b->other_field, wire::value(null_ref));
          } else {
            propagate(o.cls, o.ref, f, v, wire::value());
          }
        }
        changes_.push_back(change{o.cls, o.ref, change_kind::del, gen_});
        break;
      }
      default: break;  // add/remove are normalised into set; a precondition changes nothing
    }
  }

 private:
  state& s_;
  generation gen_;
  std::vector<change>& changes_;
  bool derive_;
};

state::state() {
  const auto& tables = schema::get().tables();
  tables_.reserve(tables.size());
  for (const auto& ts : tables) {
    auto t = std::make_shared<table_data>();
    t->by_ref.resize(ts.ref_fields.size());
    tables_.push_back(std::move(t));
  }
}

table_data& state::writable(std::size_t cls) {
  auto& t = tables_.at(cls);
  if (t.use_count() != 1) {
    t = std::make_shared<table_data>(*t);
  } else {
    // The last other holder let go; its reads happened before (its release, this acquire).
    std::atomic_thread_fence(std::memory_order_acquire);
  }
  return const_cast<table_data&>(*t);
}

const row* state::find_any(std::size_t cls, std::string_view ref) const {
  if (cls >= tables_.size()) return nullptr;
  const row_ptr* r = tables_[cls]->rows.find(ref);
  return r ? r->get() : nullptr;
}

const row* state::find(std::size_t cls, std::string_view ref) const {
  const row* r = find_any(cls, ref);
  return r && !r->deleted ? r : nullptr;
}

std::optional<std::string> state::ref_by_uuid(std::size_t cls, std::string_view uuid) const {
  const std::string* r = tables_.at(cls)->by_uuid.find(uuid);
  return r ? std::optional<std::string>(*r) : std::nullopt;
}

std::vector<std::string> state::refs_by_name_label(std::size_t cls, std::string_view label) const {
  return refs_in(tables_.at(cls)->by_name_label.find(label));
}

std::vector<std::string> state::refs_by_field(std::size_t cls, std::size_t field, std::string_view target) const {
  const auto& ref_fields = schema::get().table(cls).ref_fields;
  auto it = std::find(ref_fields.begin(), ref_fields.end(), field);
  if (it == ref_fields.end()) return {};
  return refs_in(tables_[cls]->by_ref[static_cast<std::size_t>(it - ref_fields.begin())].find(target));
}

std::size_t state::count(std::size_t cls) const { return tables_.at(cls)->live; }

void state::for_each(std::size_t cls, const std::function<bool(const std::string&, const row&)>& fn,
                     bool with_tombstones) const {
  tables_.at(cls)->rows.for_each([&](const std::string& ref, const row_ptr& r) {
    return (!with_tombstones && r->deleted) || fn(ref, *r);
  });
}

api::status state::validate_and_normalize(op& o) const {
  const auto& sch = schema::get();
  if (o.cls >= tables_.size())
    return fail(api::errors::INTERNAL_ERROR("no class with index " + std::to_string(o.cls)));
  const table_schema& ts = sch.table(o.cls);
  const std::string cls_name(ts.desc->name);

  // Every ref a value points at must be a live object of the field's class.
  auto check_targets = [&](std::size_t field, const wire::value& v) -> api::status {
    if (ts.ref_target[field] == no_class) return ok_v;
    for (const auto& target : applier::refs_of(v))
      if (!find(ts.ref_target[field], target)) return fail(handle_invalid(ts.ref_target[field], target));
    return ok_v;
  };
  auto check_uuid = [&](const std::string& uuid) -> api::status {
    if (auto owner = ref_by_uuid(o.cls, uuid); owner && *owner != o.ref)
      return fail(api::errors::DB_UNIQUENESS_CONSTRAINT_VIOLATION(cls_name, "uuid", uuid));
    return ok_v;
  };

  if (o.kind == op_kind::create) {
    if (o.ref.empty() || is_null_ref(o.ref) || find_any(o.cls, o.ref))
      return fail(api::errors::DB_UNIQUENESS_CONSTRAINT_VIOLATION(cls_name, "_ref", o.ref));
    void* raw = ts.ops->create();
    auto rec = own(ts, raw);
    if (auto st = o.value.as_array() ? record_from_fields(ts, raw, o.value) : ts.ops->from_value(raw, o.value); !st)
      return st;
    for (std::size_t f = 0; f < ts.bindings.size(); ++f)
      if (ts.bindings[f] && ts.bindings[f]->derived) (void)ts.ops->set_field(raw, f, wire::value(wire::array{}));
    if (ts.uuid_field) {
      // Chosen when the transaction was built (transaction::create): apply cannot draw one.
      std::string uuid(text_field(ts, raw, *ts.uuid_field));
      if (uuid.empty()) return fail(api::errors::UUID_INVALID(cls_name, ""));
      if (auto st = check_uuid(uuid); !st) return st;
    }
    for (std::size_t f = 0; f < ts.desc->fields.size(); ++f)
      if (auto st = check_targets(f, ts.ops->get_field(raw, f)); !st) return st;
    o.value = record_to_fields(ts, raw);
    const wire::array& fields = *o.value.as_array();
    for (std::size_t f = 0; f < fields.size(); ++f)
      if (auto st = check_bounds(ts, f, fields[f]); !st) return st;
    return ok_v;
  }

  const row* r = find(o.cls, o.ref);
  if (o.kind == op_kind::expect_unchanged || o.kind == op_kind::expect_field) {
    auto conflict = [&]() -> api::status {
      return fail(api::error_from_description(decode_error(o.key), api::errors::INTERNAL_ERROR("a precondition failed on " +
                                                                                                  cls_name + " " + o.ref)));
    };
    if (!r) return conflict();
    if (o.kind == op_kind::expect_unchanged) {
      const std::int64_t* g = o.value.as_int();
      return g && r->modified == static_cast<generation>(*g) ? api::status(ok_v) : conflict();
    }
    if (o.field >= ts.desc->fields.size()) return conflict();
    return ts.ops->get_field(r->record.get(), o.field) == o.value ? api::status(ok_v) : conflict();
  }
  if (!r) return fail(handle_invalid(o.cls, o.ref));
  if (o.kind == op_kind::destroy) return ok_v;

  if (o.field >= ts.desc->fields.size())
    return fail(api::errors::INTERNAL_ERROR("no field " + std::to_string(o.field) + " in " + cls_name));
  const std::string field_name(ts.desc->fields[o.field].name);
  if (ts.bindings[o.field] && ts.bindings[o.field]->derived)
    return fail(api::errors::OPERATION_NOT_ALLOWED(cls_name + "." + field_name +
                                                    " is maintained from the objects that point at it"));

  // add/remove become a set of the whole new value: one mechanism from here on.
  wire::value cur = ts.ops->get_field(r->record.get(), o.field);
  const api::type_kind field_kind = ts.desc->fields[o.field].type->kind;
  switch (o.kind) {
    case op_kind::add_to_set:
    case op_kind::remove_from_set: {
      if (field_kind != api::type_kind::set) return fail(api::errors::FIELD_TYPE_ERROR(field_name));
      wire::array items = *cur.as_array();
      auto it = std::find(items.begin(), items.end(), o.value);
      if (o.kind == op_kind::add_to_set && it == items.end()) items.push_back(o.value);
      if (o.kind == op_kind::remove_from_set && it != items.end()) items.erase(it);
      o.value = wire::value(std::move(items));
      break;
    }
    case op_kind::add_to_map:
    case op_kind::remove_from_map: {
      if (field_kind != api::type_kind::map) return fail(api::errors::FIELD_TYPE_ERROR(field_name));
      wire::structure members = *cur.as_struct();
      auto it = std::find_if(members.begin(), members.end(), [&](const wire::member& m) { return m.first == o.key; });
      if (o.kind == op_kind::add_to_map) {
        if (it != members.end()) {
          std::string uuid = ts.uuid_field ? std::string(text_field(ts, r->record.get(), *ts.uuid_field)) : o.ref;
          return fail(api::errors::MAP_DUPLICATE_KEY(cls_name, field_name, uuid, o.key));
        }
        members.emplace_back(o.key, o.value);
      } else if (it != members.end()) {
        members.erase(it);
      }
      o.value = wire::value(std::move(members));
      o.key.clear();
      break;
    }
    default: break;
  }
  o.kind = op_kind::set;
  if (auto st = check_bounds(ts, o.field, o.value); !st) return st;

  // The value is checked and made canonical (map keys ordered, values typed) on a fresh
  // default record: far cheaper than a copy of the row, and the field is all that matters.
  void* raw = ts.ops->create();
  auto scratch = own(ts, raw);
  if (auto st = ts.ops->set_field(raw, o.field, o.value); !st) return st;
  o.value = ts.ops->get_field(raw, o.field);
  if (ts.uuid_field && o.field == *ts.uuid_field) {
    if (o.value.as_string()->empty()) return fail(api::errors::UUID_INVALID(cls_name, ""));
    if (auto st = check_uuid(*o.value.as_string()); !st) return st;
  }
  return check_targets(o.field, o.value);
}

void state::apply(const op& o, generation gen, std::vector<change>& changes) {
  applier(*this, gen, changes, true).apply(o);
}

void state::load_row(std::size_t cls, std::string ref, row r) {
  const table_schema& ts = schema::get().table(cls);
  // The row was just decoded and nothing else holds it yet: its derived fields are cleared in
  // place (a database of an older build stored them) and filled by derive_after_load.
  void* rec = const_cast<void*>(r.record.get());
  for (std::size_t f = 0; f < ts.bindings.size(); ++f)
    if (ts.bindings[f] && ts.bindings[f]->derived) ts.ops->set_derived(rec, f, persistent_set{});
  std::vector<change> ignored;
  applier a(*this, r.modified, ignored, false);
  if (!r.deleted) {
    a.index(cls, ref, rec, true);
    ++writable(cls).live;
  }
  writable(cls).rows.set(std::move(ref), std::make_shared<row>(std::move(r)));
}

void state::derive_after_load() {
  const auto& sch = schema::get();
  for (std::size_t c = 0; c < tables_.size(); ++c) {
    const table_schema& ts = sch.table(c);
    for (std::size_t i = 0; i < ts.ref_fields.size(); ++i) {
      const auto& b = ts.bindings[ts.ref_fields[i]];
      if (!b || b->many_to_many) continue;
      const table_schema& pts = sch.table(b->other_class);
      tables_[c]->by_ref[i].for_each([&](const std::string& target, const persistent_set& refs) {
        const row_ptr* partner = tables_[b->other_class]->rows.find(target);
        // Loaded rows are held by this state alone until it is published.
        if (partner && !(*partner)->deleted)
          pts.ops->set_derived(const_cast<void*>((*partner)->record.get()), b->other_field, refs);
        return true;
      });
    }
  }
}

void state::erase_tombstone(std::size_t cls, const std::string& ref) {
  const row* r = find_any(cls, ref);
  if (r && r->deleted) writable(cls).rows.erase(ref);
}

}  // namespace xapid::storage
