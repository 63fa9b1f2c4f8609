// The pool database on a real RocksDB in a temporary directory: indexes, bound fields,
// transactions, tombstones, the change feed, durability and replication.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <rocksdb/db.h>

#include "storage/database.hpp"
#include "storage/row_values.hpp"
#include "tests/support/api_error_matchers.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::storage {
namespace {

using wire::value;

std::size_t cls(std::string_view name) { return *schema::get().class_index(name); }
std::size_t fld(std::string_view c, std::string_view f) { return *schema::get().field_index(cls(c), f); }
std::optional<std::size_t> fld_index_uuid() { return schema::get().field_index(cls("VM"), "uuid"); }

class storage_test : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }

  void reopen() {
    db_.reset();
    auto r = database::open({dir_.path() + "/db", &clock_, &ids_});
    ASSERT_TRUE(r.ok()) << r.error();
    db_ = std::move(r).value();
  }

  // Commits and expects success.
  generation commit(transaction& t) {
    auto r = db_->commit(std::move(t));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().description().at(0));
    return r.ok() ? *r : 0;
  }

  std::string create_vm(const std::string& name) {
    auto t = db_->begin();
    api::vm rec;
    rec.name_label = name;
    std::string ref = t.create(rec);
    commit(t);
    return ref;
  }

  // One transaction of two operations on a VM: a VBD created for it, a tag added.
  void give_a_vbd_and_a_tag(const std::string& vm) {
    auto t = db_->begin();
    api::vbd vbd;
    vbd.VM.opaque = vm;
    t.create(vbd);
    t.add_to_set(cls("VM"), vm, fld("VM", "tags"), value("t"));
    commit(t);
  }

  template <class R>
  const R* get(const std::string& ref) {
    snap_ = db_->snapshot();
    return snap_->get<R>(ref);
  }

  testing::temp_dir dir_;
  manual_clock clock_;
  id_source ids_{42};
  std::unique_ptr<database> db_;
  std::shared_ptr<const state> snap_;
};

TEST_F(storage_test, create_fills_the_uuid_and_indexes_it) {
  std::string ref = create_vm("web");
  const api::vm* vm = get<api::vm>(ref);
  ASSERT_NE(vm, nullptr);
  EXPECT_EQ(vm->name_label, "web");
  EXPECT_EQ(vm->uuid.size(), 36u);
  EXPECT_EQ(snap_->ref_by_uuid(cls("VM"), vm->uuid), ref);
  EXPECT_EQ(snap_->refs_by_name_label(cls("VM"), "web"), std::vector<std::string>{ref});
  EXPECT_EQ(snap_->ref_by_uuid(cls("VM"), "no-such-uuid"), std::nullopt);
  EXPECT_EQ(snap_->count(cls("VM")), 1u);
}

TEST_F(storage_test, rows_as_answers_are_the_records_of_the_snapshot_they_were_read_from) {
  std::string a = create_vm("a"), b = create_vm("b");
  std::shared_ptr<const state> before = db_->snapshot();
  const row* ra = before->find(cls("VM"), a);
  ASSERT_NE(ra, nullptr);
  value one = record_value(schema::get().table(cls("VM")), ra->record);
  value all = all_records_value(before, cls("VM"));
  // Later changes do not reach values already read.
  auto t = db_->begin();
  t.set(cls("VM"), a, fld("VM", "name_label"), value("renamed"));
  t.destroy(cls("VM"), b);
  commit(t);

  EXPECT_EQ(wire::built(one), api::to_value(*before->get<api::vm>(a)));
  std::map<std::string, value> records;
  const value all_built = wire::built(all);
  for (auto& [ref, rec] : *all_built.as_struct()) records.emplace(ref, rec);
  EXPECT_EQ(records, (std::map<std::string, value>{{a, api::to_value(*before->get<api::vm>(a))},
                                                   {b, api::to_value(*before->get<api::vm>(b))}}));
  before.reset();  // the values keep what they read alive
  value again = wire::built(one);
  EXPECT_EQ(*again.find("name_label")->as_string(), "a");
  EXPECT_EQ(wire::built(all).as_struct()->size(), 2u);
}

TEST_F(storage_test, indexes_follow_changes) {
  std::string ref = create_vm("old");
  auto t = db_->begin();
  t.set(cls("VM"), ref, fld("VM", "name_label"), value("new"));
  commit(t);
  snap_ = db_->snapshot();
  EXPECT_TRUE(snap_->refs_by_name_label(cls("VM"), "old").empty());
  EXPECT_EQ(snap_->refs_by_name_label(cls("VM"), "new"), std::vector<std::string>{ref});
}

TEST_F(storage_test, reference_fields_are_indexed_lookups) {
  std::string vm = create_vm("vm");
  auto t = db_->begin();
  std::vector<std::string> vbds;
  for (int i = 0; i < 3; ++i) {
    api::vbd vbd;
    vbd.VM.opaque = vm;
    vbd.userdevice = std::to_string(i);
    vbds.push_back(t.create(vbd));
  }
  commit(t);
  snap_ = db_->snapshot();
  auto found = snap_->refs_by_field(cls("VBD"), fld("VBD", "VM"), vm);
  std::sort(found.begin(), found.end());  // a set: in no particular order
  std::sort(vbds.begin(), vbds.end());
  EXPECT_EQ(found, vbds);
}

TEST_F(storage_test, a_vif_created_with_a_vm_joins_its_vifs_and_leaves_on_destroy) {
  std::string vm = create_vm("vm");
  auto t = db_->begin();
  api::vif vif;
  vif.VM.opaque = vm;
  std::string ref = t.create(vif);
  commit(t);
  ASSERT_EQ(get<api::vm>(vm)->VIFs.size(), 1u);
  EXPECT_EQ(get<api::vm>(vm)->VIFs.front().opaque, ref);

  auto d = db_->begin();
  d.destroy(cls("VIF"), ref);
  commit(d);
  EXPECT_TRUE(get<api::vm>(vm)->VIFs.empty());
  EXPECT_EQ(get<api::vif>(ref), nullptr);
}

TEST_F(storage_test, destroying_the_one_side_nulls_the_pointers_at_it) {
  std::string vm = create_vm("vm");
  auto t = db_->begin();
  api::vbd vbd;
  vbd.VM.opaque = vm;
  std::string ref = t.create(vbd);
  commit(t);
  auto d = db_->begin();
  d.destroy(cls("VM"), vm);
  commit(d);
  ASSERT_NE(get<api::vbd>(ref), nullptr);
  EXPECT_TRUE(get<api::vbd>(ref)->VM.is_null());
}

// Every row of the seed's bound-field table: pointing one side at an object shows on the other
// side, moving it moves it, and destroying the pointing object removes it.
TEST_F(storage_test, every_bound_field_pair_stays_consistent) {
  const auto& sch = schema::get();
  int pairs = 0;
  for (const auto& ts : sch.tables()) {
    for (std::size_t f = 0; f < ts.bindings.size(); ++f) {
      const auto& b = ts.bindings[f];
      if (!b || b->derived) continue;  // drive each pair from its writable side
      ++pairs;
      SCOPED_TRACE(std::string(ts.desc->name) + "." + std::string(ts.desc->fields[f].name));
      auto t = db_->begin();
      std::string target1 = t.create(b->other_class, value(wire::structure{}));
      std::string target2 = t.create(b->other_class, value(wire::structure{}));
      wire::value points = b->many_to_many ? value(wire::array{value(target1)}) : value(target1);
      std::string src = t.create(ts.index, value(wire::structure{{std::string(ts.desc->fields[f].name), points}}));
      commit(t);
      snap_ = db_->snapshot();
      auto other_has = [&](const std::string& target) {
        const row* r = snap_->find(b->other_class, target);
        wire::value v = sch.table(b->other_class).ops->get_field(r->record.get(), b->other_field);
        const auto& items = *v.as_array();
        return std::find(items.begin(), items.end(), value(src)) != items.end();
      };
      EXPECT_TRUE(other_has(target1));
      EXPECT_FALSE(other_has(target2));

      auto move = db_->begin();
      move.set(ts.index, src, f, b->many_to_many ? value(wire::array{value(target2)}) : value(target2));
      commit(move);
      snap_ = db_->snapshot();
      EXPECT_FALSE(other_has(target1));
      EXPECT_TRUE(other_has(target2));

      auto d = db_->begin();
      d.destroy(ts.index, src);
      commit(d);
      snap_ = db_->snapshot();
      EXPECT_FALSE(other_has(target2));
    }
  }
  // Every row of the table was driven: one-to-many pairs from their scalar side, many-to-many
  // pairs from both sides; role.subroles is bound to itself and so binds nothing.
  int expected = 0;
  for (const auto& r : api::all_relations())
    if (!(r.class_a == r.class_b && r.field_a == r.field_b)) expected += r.kind == "many-to-many" ? 2 : 1;
  EXPECT_EQ(pairs, expected);
  EXPECT_GE(pairs, 44);
}

// The many side of every one-to-many pair is derived from an index of the scalar side: after
// random creates, moves and destroys (seeded; XAPID_TEST_SEED replays) each derived set equals a
// scan of the rows pointing at it, before and after a restart.
TEST_F(storage_test, derived_sets_equal_a_scan_of_the_scalar_side) {
  const auto& sch = schema::get();
  struct pair_desc {
    std::size_t cls, field, other_class, other_field;
  };
  std::vector<pair_desc> pairs;
  for (const auto& ts : sch.tables())
    for (std::size_t f = 0; f < ts.bindings.size(); ++f)
      if (const auto& b = ts.bindings[f]; b && !b->derived && !b->many_to_many)
        pairs.push_back({ts.index, f, b->other_class, b->other_field});
  std::size_t one_to_many = 0;
  for (const auto& r : api::all_relations()) one_to_many += r.kind == "one-to-many";
  ASSERT_EQ(pairs.size(), one_to_many);

  const char* env = std::getenv("XAPID_TEST_SEED");
  const std::uint64_t seed = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  std::printf("derived sets seed: %llu (XAPID_TEST_SEED replays it)\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };

  // Targets and pointing rows per pair, created and moved at random.
  std::map<std::size_t, std::vector<std::string>> live;  // class -> refs believed live
  auto live_of = [&](std::size_t c) -> std::vector<std::string>& { return live[c]; };
  for (int step = 0; step < 600; ++step) {
    const pair_desc& p = pairs[rng() % pairs.size()];
    auto t = db_->begin();
    const int what = static_cast<int>(rng() % 4);
    if (what == 0 || live_of(p.other_class).empty()) {
      live_of(p.other_class).push_back(t.create(p.other_class, value(wire::structure{})));
    } else if (what == 1 || live_of(p.cls).empty()) {
      const std::string target = pick(live_of(p.other_class));
      std::string ref = t.create(p.cls, value(wire::structure{{std::string(sch.table(p.cls).desc->fields[p.field].name), value(target)}}));
      live_of(p.cls).push_back(ref);
    } else if (what == 2) {
      const std::string target = rng() % 5 == 0 ? std::string(api::null_ref_text) : pick(live_of(p.other_class));
      t.set(p.cls, pick(live_of(p.cls)), p.field, value(target));
    } else {
      const std::size_t c = rng() % 2 ? p.cls : p.other_class;
      auto& refs = live_of(c);
      if (refs.empty()) continue;
      const std::size_t i = rng() % refs.size();
      t.destroy(c, refs[i]);
      refs.erase(refs.begin() + static_cast<std::ptrdiff_t>(i));
    }
    commit(t);
  }

  auto check = [&] {
    snap_ = db_->snapshot();
    int nonempty = 0;
    for (const auto& p : pairs) {
      std::map<std::string, std::set<std::string>> scanned;
      snap_->for_each(p.cls, [&](const std::string& ref, const row& r) {
        wire::value v = sch.table(p.cls).ops->get_field(r.record.get(), p.field);
        if (*v.as_string() != api::null_ref_text && !v.as_string()->empty()) scanned[*v.as_string()].insert(ref);
        return true;
      });
      snap_->for_each(p.other_class, [&](const std::string& ref, const row& r) {
        wire::value v = sch.table(p.other_class).ops->get_field(r.record.get(), p.other_field);
        std::set<std::string> derived;
        for (const auto& e : *v.as_array()) EXPECT_TRUE(derived.insert(*e.as_string()).second);
        auto it = scanned.find(ref);
        EXPECT_EQ(derived, it == scanned.end() ? std::set<std::string>{} : it->second)
            << sch.table(p.other_class).desc->name << "." << sch.table(p.other_class).desc->fields[p.other_field].name
            << " of " << ref;
        nonempty += !derived.empty();
        return true;
      });
    }
    return nonempty;
  };
  EXPECT_GT(check(), 20);
  reopen();
  check();
}

// A derived set is never stored: a template with 300 clones keeps a small row on disk, and a
// clone's arrival gives the template a "mod" event without rewriting it.
TEST_F(storage_test, a_partner_joining_a_derived_set_does_not_rewrite_the_row) {
  std::string tmpl = create_vm("template");
  const generation before = db_->current_generation();
  const generation modified = db_->snapshot()->find(cls("VM"), tmpl)->modified;
  for (int i = 0; i < 300; ++i) {
    auto t = db_->begin();
    api::vm clone;
    clone.parent.opaque = tmpl;
    t.create(clone);
    commit(t);
  }
  EXPECT_EQ(get<api::vm>(tmpl)->children.size(), 300u);
  auto feed = db_->changes_since(before, std::chrono::milliseconds(0));
  int template_mods = 0;
  for (const auto& c : feed.changes) template_mods += c.ref == tmpl && c.kind == change_kind::mod;
  EXPECT_EQ(template_mods, 300);
  // Its own fields did not change: a writer that read it before the clones may still commit
  // with expect_unchanged (a partner joining is no conflict).
  EXPECT_EQ(db_->snapshot()->find(cls("VM"), tmpl)->modified, modified);

  db_.reset();
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), dir_.path() + "/db", &raw).ok());
    std::unique_ptr<rocksdb::DB> ro(raw);
    std::string key = "r";
    key.push_back(static_cast<char>(cls("VM") >> 8));
    key.push_back(static_cast<char>(cls("VM") & 0xff));
    std::string bytes;
    ASSERT_TRUE(ro->Get(rocksdb::ReadOptions(), key + tmpl, &bytes).ok());
    EXPECT_LT(bytes.size(), 4000u) << "the template's children were stored with it";
  }
  reopen();
  EXPECT_EQ(get<api::vm>(tmpl)->children.size(), 300u);
}

TEST_F(storage_test, the_derived_side_cannot_be_written) {
  std::string vm = create_vm("vm");
  auto t = db_->begin();
  t.set(cls("VM"), vm, fld("VM", "VIFs"), value(wire::array{}));
  EXPECT_API_ERROR(db_->commit(std::move(t)), OPERATION_NOT_ALLOWED,
                   "VM.VIFs is maintained from the objects that point at it");
}

TEST_F(storage_test, a_transaction_is_all_or_nothing) {
  std::string vm = create_vm("vm");
  generation before = db_->current_generation();
  auto t = db_->begin();
  t.set(cls("VM"), vm, fld("VM", "name_label"), value("renamed"));
  api::vbd vbd;
  vbd.VM.opaque = vm;
  t.create(vbd);
  t.set(cls("VM"), "OpaqueRef:missing", fld("VM", "name_label"), value("x"));
  EXPECT_API_ERROR(db_->commit(std::move(t)), HANDLE_INVALID, "VM", "OpaqueRef:missing");
  EXPECT_EQ(db_->current_generation(), before);
  EXPECT_EQ(get<api::vm>(vm)->name_label, "vm");
  EXPECT_TRUE(get<api::vm>(vm)->VBDs.empty());
  EXPECT_EQ(snap_->count(cls("VBD")), 0u);
}

TEST_F(storage_test, constraint_violations_are_xenapi_errors) {
  std::string vm = create_vm("vm");
  std::string uuid = get<api::vm>(vm)->uuid;

  auto dup = db_->begin();
  api::vm other;
  other.uuid = uuid;
  dup.create(other);
  EXPECT_API_ERROR(db_->commit(std::move(dup)), DB_UNIQUENESS_CONSTRAINT_VIOLATION, "VM", "uuid", uuid);

  auto dangling = db_->begin();
  api::vbd vbd;
  vbd.VM.opaque = "OpaqueRef:nowhere";
  dangling.create(vbd);
  EXPECT_API_ERROR(db_->commit(std::move(dangling)), HANDLE_INVALID, "VM", "OpaqueRef:nowhere");

  auto wrong_type = db_->begin();
  wrong_type.set(cls("VM"), vm, fld("VM", "memory_static_max"), value("lots"));
  EXPECT_API_ERROR(db_->commit(std::move(wrong_type)), XMLRPC_UNMARSHAL_FAILURE, "int", "lots");

  auto key = db_->begin();
  key.add_to_map(cls("VM"), vm, fld("VM", "other_config"), "k", value("1"));
  commit(key);
  auto again = db_->begin();
  again.add_to_map(cls("VM"), vm, fld("VM", "other_config"), "k", value("2"));
  EXPECT_API_ERROR(db_->commit(std::move(again)), MAP_DUPLICATE_KEY, "VM", "other_config", uuid, "k");

  auto gone = db_->begin();
  gone.destroy(cls("VM"), "OpaqueRef:gone");
  EXPECT_API_ERROR(db_->commit(std::move(gone)), HANDLE_INVALID, "VM", "OpaqueRef:gone");
}

TEST_F(storage_test, set_and_map_operations) {
  std::string vm = create_vm("vm");
  auto t = db_->begin();
  t.add_to_set(cls("VM"), vm, fld("VM", "tags"), value("a"));
  t.add_to_set(cls("VM"), vm, fld("VM", "tags"), value("b"));
  t.add_to_set(cls("VM"), vm, fld("VM", "tags"), value("a"));  // sets hold no duplicates
  t.remove_from_set(cls("VM"), vm, fld("VM", "tags"), value("b"));
  t.add_to_map(cls("VM"), vm, fld("VM", "other_config"), "x", value("1"));
  t.add_to_map(cls("VM"), vm, fld("VM", "other_config"), "y", value("2"));
  t.remove_from_map(cls("VM"), vm, fld("VM", "other_config"), "x");
  commit(t);
  const api::vm* rec = get<api::vm>(vm);
  EXPECT_EQ(rec->tags, std::vector<std::string>{"a"});
  EXPECT_EQ(rec->other_config, (api::map<std::string, std::string>{{"y", "2"}}));
}

TEST_F(storage_test, tombstones_stay_for_event_consumers_until_collected) {
  std::string vm = create_vm("vm");
  auto d = db_->begin();
  d.destroy(cls("VM"), vm);
  generation deleted_at = commit(d);
  snap_ = db_->snapshot();
  EXPECT_EQ(snap_->find(cls("VM"), vm), nullptr);
  ASSERT_NE(snap_->find_any(cls("VM"), vm), nullptr);
  EXPECT_EQ(snap_->find_any(cls("VM"), vm)->deleted, deleted_at);

  reopen();  // tombstones are durable too
  ASSERT_NE(db_->snapshot()->find_any(cls("VM"), vm), nullptr);
  ASSERT_TRUE(db_->collect_tombstones(deleted_at).ok());
  EXPECT_EQ(db_->snapshot()->find_any(cls("VM"), vm), nullptr);
  reopen();
  EXPECT_EQ(db_->snapshot()->find_any(cls("VM"), vm), nullptr);
}

TEST_F(storage_test, every_commit_is_the_next_generation_and_rows_record_theirs) {
  generation g0 = db_->current_generation();
  std::string vm = create_vm("vm");
  EXPECT_EQ(db_->current_generation(), g0 + 1);
  auto t = db_->begin();
  t.set(cls("VM"), vm, fld("VM", "name_label"), value("x"));
  EXPECT_EQ(commit(t), g0 + 2);
  const row* r = db_->snapshot()->find(cls("VM"), vm);
  EXPECT_EQ(r->created, g0 + 1);
  EXPECT_EQ(r->modified, g0 + 2);
  EXPECT_EQ(r->deleted, 0u);
}

TEST_F(storage_test, the_change_feed_answers_what_changed_after_a_generation) {
  generation g = db_->current_generation();
  std::string vm = create_vm("vm");
  auto d = db_->begin();
  d.destroy(cls("VM"), vm);
  commit(d);
  auto r = db_->changes_since(g, std::chrono::milliseconds(0));
  ASSERT_FALSE(r.lost);
  ASSERT_EQ(r.changes.size(), 2u);
  EXPECT_EQ(r.changes[0].kind, change_kind::add);
  EXPECT_EQ(r.changes[0].ref, vm);
  EXPECT_EQ(r.changes[1].kind, change_kind::del);
  EXPECT_EQ(r.gen, g + 2);
  EXPECT_EQ(db_->changes_since(g + 1, std::chrono::milliseconds(0)).changes.size(), 1u);
}

TEST_F(storage_test, the_change_feed_waits_for_a_commit_or_the_timeout) {
  generation g = db_->current_generation();
  // Nothing changes: the answer comes back empty once the timeout passes.
  auto quiet = db_->changes_since(g, std::chrono::milliseconds(20));
  EXPECT_TRUE(quiet.changes.empty());
  EXPECT_EQ(quiet.gen, g);
  // A commit from another thread wakes a waiter long before its timeout.
  std::thread writer([&] { create_vm("late"); });
  auto woke = db_->changes_since(g, std::chrono::minutes(5));
  writer.join();
  ASSERT_EQ(woke.changes.size(), 1u);
  EXPECT_EQ(woke.changes[0].kind, change_kind::add);
}

TEST_F(storage_test, the_feed_says_when_it_no_longer_reaches_back) {
  db_.reset();
  auto r = database::open({dir_.path() + "/db", &clock_, &ids_, 2});
  ASSERT_TRUE(r.ok());
  db_ = std::move(r).value();
  generation g = db_->current_generation();
  for (int i = 0; i < 5; ++i) create_vm("vm" + std::to_string(i));
  EXPECT_TRUE(db_->changes_since(g, std::chrono::milliseconds(0)).lost);
  EXPECT_FALSE(db_->changes_since(db_->current_generation() - 1, std::chrono::milliseconds(0)).lost);
}

TEST_F(storage_test, concurrent_writers_each_get_their_own_generation) {
  constexpr int writers = 16, each = 20;
  std::vector<std::thread> threads;
  std::vector<std::vector<generation>> gens(writers);
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      for (int i = 0; i < each; ++i) {
        auto t = db_->begin();
        api::vm rec;
        rec.name_label = "w" + std::to_string(w);
        t.create(rec);
        auto r = db_->commit(std::move(t));
        ASSERT_TRUE(r.ok());
        gens[w].push_back(*r);
      }
    });
  for (auto& t : threads) t.join();
  std::set<generation> all;
  for (auto& g : gens) all.insert(g.begin(), g.end());
  EXPECT_EQ(all.size(), static_cast<std::size_t>(writers * each));
  EXPECT_EQ(db_->snapshot()->count(cls("VM")), static_cast<std::size_t>(writers * each));
}

TEST_F(storage_test, a_snapshot_does_not_change_under_its_reader) {
  std::string vm = create_vm("before");
  auto snap = db_->snapshot();
  auto t = db_->begin();
  t.set(cls("VM"), vm, fld("VM", "name_label"), value("after"));
  commit(t);
  create_vm("another");
  EXPECT_EQ(snap->get<api::vm>(vm)->name_label, "before");
  EXPECT_EQ(snap->count(cls("VM")), 1u);
  EXPECT_EQ(db_->snapshot()->get<api::vm>(vm)->name_label, "after");
}

TEST_F(storage_test, everything_acknowledged_is_there_after_reopening) {
  std::string vm = create_vm("vm");
  auto t = db_->begin();
  t.add_to_map(cls("VM"), vm, fld("VM", "other_config"), "k", value("v"));
  api::vif vif;
  vif.VM.opaque = vm;
  std::string vif_ref = t.create(vif);
  generation g = commit(t);
  std::string before = db_->export_checkpoint();
  reopen();
  EXPECT_EQ(db_->current_generation(), g);
  EXPECT_EQ(db_->export_checkpoint(), before);
  const api::vm* rec = get<api::vm>(vm);
  EXPECT_EQ(rec->other_config.at("k"), "v");
  ASSERT_EQ(rec->VIFs.size(), 1u);
  EXPECT_EQ(snap_->refs_by_field(cls("VIF"), fld("VIF", "VM"), vm), std::vector<std::string>{vif_ref});
}

TEST_F(storage_test, a_replica_loaded_from_checkpoint_and_entries_answers_identically) {
  create_vm("a");
  std::string checkpoint = db_->export_checkpoint();
  generation at = db_->current_generation();
  std::string vm = create_vm("b");
  give_a_vbd_and_a_tag(vm);
  auto entries = db_->export_entries_after(at);
  ASSERT_TRUE(entries.ok()) << entries.error();
  ASSERT_EQ(entries->size(), 2u);

  testing::temp_dir other;
  manual_clock other_clock(0);
  id_source other_ids(7);
  auto replica = database::open({other.path() + "/db", &other_clock, &other_ids});
  ASSERT_TRUE(replica.ok());
  ASSERT_TRUE((*replica)->import_checkpoint(checkpoint).ok());
  for (const auto& e : *entries) ASSERT_TRUE((*replica)->apply_entry(e).ok());
  for (const auto& e : *entries) ASSERT_TRUE((*replica)->apply_entry(e).ok());  // again: idempotent
  EXPECT_EQ((*replica)->current_generation(), db_->current_generation());
  EXPECT_EQ((*replica)->export_checkpoint(), db_->export_checkpoint());
}

// Two writers check one row against the snapshot they read, then commit an operation with the
// precondition that the row is unchanged: however they interleave, exactly one is admitted.
TEST_F(storage_test, of_writers_racing_on_one_row_with_preconditions_exactly_one_is_admitted) {
  std::string vm = create_vm("vm");
  const std::size_t current = fld("VM", "current_operations");
  for (int round = 0; round < 20; ++round) {
    const int writers = 8;
    std::atomic<int> ready{0}, admitted{0}, refused{0};
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w)
      threads.emplace_back([&, w] {
        auto snap = db_->snapshot();  // what the writer checked its rules against
        const row* r = snap->find(cls("VM"), vm);
        ++ready;
        while (ready < writers) std::this_thread::yield();
        auto t = db_->begin();
        t.expect_unchanged(cls("VM"), vm, r->modified, api::errors::OTHER_OPERATION_IN_PROGRESS("VM", vm));
        t.add_to_map(cls("VM"), vm, current, "task-" + std::to_string(round) + "-" + std::to_string(w), value("start"));
        auto out = db_->commit(std::move(t));
        if (out.ok()) ++admitted;
        else if (out.error().code == api::error_code::OTHER_OPERATION_IN_PROGRESS) ++refused;
      });
    for (auto& t : threads) t.join();
    EXPECT_EQ(admitted, 1) << "round " << round;
    EXPECT_EQ(refused, writers - 1) << "round " << round;
  }
  EXPECT_EQ(get<api::vm>(vm)->current_operations.size(), 20u);

  // A field's value as the precondition: the one holding the expected value wins.
  auto a = db_->begin(), b = db_->begin();
  a.expect_field(cls("VM"), vm, fld("VM", "name_label"), value("vm"), api::errors::OTHER_OPERATION_IN_PROGRESS("VM", vm));
  a.set(cls("VM"), vm, fld("VM", "name_label"), value("renamed by a"));
  b.expect_field(cls("VM"), vm, fld("VM", "name_label"), value("vm"), api::errors::OTHER_OPERATION_IN_PROGRESS("VM", vm));
  b.set(cls("VM"), vm, fld("VM", "name_label"), value("renamed by b"));
  commit(a);
  EXPECT_API_ERROR(db_->commit(std::move(b)), OTHER_OPERATION_IN_PROGRESS, "VM", vm);
  EXPECT_EQ(get<api::vm>(vm)->name_label, "renamed by a");
}

// Applying is deterministic, failures included: the same entries on two fresh databases give
// byte-identical checkpoints, an entry that fails validation takes its generation and changes
// nothing on both, and a create's uuid is in its entry (apply never draws one).
TEST_F(storage_test, the_same_entries_on_two_fresh_databases_give_identical_checkpoints) {
  std::string vm = create_vm("a");
  give_a_vbd_and_a_tag(vm);
  auto d = db_->begin();
  d.destroy(cls("VM"), create_vm("doomed"));
  commit(d);
  auto entries = db_->export_entries_after(0);
  ASSERT_TRUE(entries.ok()) << entries.error();
  auto first = decode_log_entry(entries->front());
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->ops.at(0).kind, op_kind::create);
  EXPECT_NE(first->ops.at(0).value.as_array()->at(*fld_index_uuid()).as_string()->size(), 0u);

  // Entries that fail where they are applied: a set on a ref that does not exist, a failed
  // precondition, and a create without a uuid.
  generation next = db_->current_generation() + 1;
  log_entry missing{next++, 1000, {op{op_kind::set, static_cast<std::uint32_t>(cls("VM")), "OpaqueRef:missing",
                                      static_cast<std::uint32_t>(fld("VM", "name_label")), {}, value("x")}}};
  transaction pre(ids_);
  pre.expect_unchanged(cls("VM"), vm, 1, api::errors::OTHER_OPERATION_IN_PROGRESS("VM", vm));
  pre.set(cls("VM"), vm, fld("VM", "name_label"), value("changed"));
  log_entry precondition{next++, 1001, pre.ops()};
  log_entry no_uuid{next++, 1002, {op{op_kind::create, static_cast<std::uint32_t>(cls("VM")), "OpaqueRef:new", 0, {},
                                      value(wire::structure{{"name_label", value("n")}})}}};
  std::vector<std::string> all = *entries;
  for (const auto* e : {&missing, &precondition, &no_uuid}) all.push_back(encode(*e));

  std::vector<std::string> checkpoints;
  for (int i = 0; i < 2; ++i) {
    testing::temp_dir other;
    manual_clock other_clock(static_cast<std::int64_t>(i) * 999);
    id_source other_ids(100 + static_cast<std::uint64_t>(i));  // apply must not draw from these
    auto replica = database::open({other.path() + "/db", &other_clock, &other_ids});
    ASSERT_TRUE(replica.ok());
    for (const auto& e : all) ASSERT_TRUE((*replica)->apply_entry(e).ok());
    EXPECT_EQ((*replica)->current_generation(), next - 1);
    EXPECT_EQ((*replica)->snapshot()->get<api::vm>(vm)->name_label, "a");
    EXPECT_FALSE((*replica)->snapshot()->find(cls("VM"), "OpaqueRef:new"));
    checkpoints.push_back((*replica)->export_checkpoint());
    auto logged = (*replica)->export_entries_after(0);
    ASSERT_TRUE(logged.ok());
    EXPECT_EQ(logged->size(), all.size());  // the failed ones are in the log too
  }
  EXPECT_EQ(checkpoints[0], checkpoints[1]);
}

// A replica that fell behind beyond the entries kept installs a newer checkpoint over its
// state: afterwards it holds exactly the source's rows (deleted ones gone), also after a restart.
TEST_F(storage_test, a_checkpoint_installed_over_a_stale_replica_replaces_its_state) {
  std::string kept = create_vm("kept"), doomed = create_vm("doomed");
  testing::temp_dir other;
  manual_clock other_clock(0);
  id_source other_ids(7);
  auto opened = database::open({other.path() + "/db", &other_clock, &other_ids});
  ASSERT_TRUE(opened.ok());
  std::unique_ptr<database> replica = std::move(opened).value();
  ASSERT_TRUE(replica->import_checkpoint(db_->export_checkpoint()).ok());
  const std::string stale = replica->export_checkpoint();

  auto d = db_->begin();
  d.destroy(cls("VM"), doomed);
  commit(d);
  for (int i = 0; i < 50; ++i) create_vm("later-" + std::to_string(i));
  auto t = db_->begin();
  t.set(cls("VM"), kept, fld("VM", "name_label"), value("kept and renamed"));
  commit(t);

  auto waiter_gen = replica->current_generation();
  ASSERT_TRUE(replica->import_checkpoint(db_->export_checkpoint()).ok());
  EXPECT_EQ(replica->current_generation(), db_->current_generation());
  EXPECT_EQ(replica->export_checkpoint(), db_->export_checkpoint());
  EXPECT_NE(replica->export_checkpoint(), stale);
  EXPECT_TRUE(replica->changes_since(waiter_gen, std::chrono::milliseconds(0)).lost);
  // An older checkpoint is refused and changes nothing.
  EXPECT_FALSE(replica->import_checkpoint(stale).ok());
  EXPECT_EQ(replica->export_checkpoint(), db_->export_checkpoint());

  replica.reset();
  auto reopened = database::open({other.path() + "/db", &other_clock, &other_ids});
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->export_checkpoint(), db_->export_checkpoint());
  EXPECT_EQ((*reopened)->snapshot()->find(cls("VM"), doomed), nullptr);
  EXPECT_EQ((*reopened)->snapshot()->get<api::vm>(kept)->name_label, "kept and renamed");
}

// A session's ref is its bearer credential: whoever could replay the seeded identifiers (or
// recover the PRNG's state from uuids it has seen) still cannot name a session.
TEST_F(storage_test, session_refs_do_not_follow_the_seeded_identifiers) {
  id_source replay{42};  // the same seed as the database's
  auto t = db_->begin();
  std::string vm = t.create(api::vm{});
  std::string session = t.create(api::session{});
  commit(t);
  EXPECT_EQ(vm, replay.opaque_ref());
  const std::string predicted = replay.opaque_ref();
  EXPECT_NE(session, predicted);
  EXPECT_TRUE(session.starts_with("OpaqueRef:"));
  EXPECT_EQ(session.size(), predicted.size());
}

// The order of commits is the sequencer's: a database given its own sees every proposal pass
// through it, in batches when writers come together, with the time fixed when the writer
// prepared it (what a replicated log needs: the entry is the same bytes on every member).
class recording_sequencer final : public sequencer {
 public:
  void start(apply_fn apply) override {
    inner_.start([this, apply](std::span<const std::shared_ptr<proposal>> batch) {
      {
        std::lock_guard lock(mu);
        batch_sizes.push_back(batch.size());
        for (const auto& p : batch) times.push_back(p->time_ms);
      }
      apply(batch);
      for (const auto& p : batch) EXPECT_TRUE(p->outcome.has_value()) << "apply left a proposal without its outcome";
    });
  }
  bool order_and_wait(const std::shared_ptr<proposal>& p) override { return inner_.order_and_wait(p); }
  bool order(const std::shared_ptr<proposal>& p) override { return inner_.order(p); }
  void stop() override { inner_.stop(); }

  std::mutex mu;
  std::vector<std::size_t> batch_sizes;
  std::vector<std::int64_t> times;

 private:
  local_sequencer inner_;
};

TEST_F(storage_test, commits_are_ordered_by_the_sequencer_the_database_is_given) {
  db_.reset();
  auto order = std::make_shared<recording_sequencer>();
  database_options o{dir_.path() + "/db", &clock_, &ids_};
  o.order = order;
  auto r = database::open(o);
  ASSERT_TRUE(r.ok()) << r.error();
  db_ = std::move(r).value();

  const generation g0 = db_->current_generation();
  clock_.advance_ms(5000);
  const std::int64_t prepared_at = clock_.now_ms();
  create_vm("first");
  constexpr int writers = 8, each = 40;
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      for (int i = 0; i < each; ++i) create_vm("vm" + std::to_string(w) + "." + std::to_string(i));
    });
  for (auto& t : threads) t.join();
  // A refused transaction passes through the order too, and takes no generation.
  auto bad = db_->begin();
  bad.set(cls("VM"), "OpaqueRef:missing", fld("VM", "name_label"), value("x"));
  EXPECT_API_ERROR(db_->commit(std::move(bad)), HANDLE_INVALID, "VM", "OpaqueRef:missing");

  std::lock_guard lock(order->mu);
  std::size_t ordered = 0, largest = 0;
  for (auto n : order->batch_sizes) ordered += n, largest = std::max(largest, n);
  EXPECT_EQ(ordered, 1u + writers * each + 1u);
  EXPECT_EQ(db_->current_generation(), g0 + 1 + writers * each);
  EXPECT_GT(largest, 1u) << "concurrent writers never shared a batch (no group commit)";
  EXPECT_EQ(order->times.front(), prepared_at);
  auto entries = db_->export_entries_after(g0);
  ASSERT_TRUE(entries.ok()) << entries.error();
  auto first = decode_log_entry(entries->front());
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->time_ms, prepared_at) << "the entry holds the time it was prepared at";
}

// A commit need not hold its caller's thread: commit_async hands the outcome over once the
// entry is applied (what the objects' actors do, so that no actor waits for an fsync).
TEST_F(storage_test, an_asynchronous_commit_hands_its_outcome_over_once_applied) {
  std::promise<result<generation, api::api_error>> good, bad;
  auto t = db_->begin();
  api::vm rec;
  rec.name_label = "async";
  const std::string ref = t.create(rec);
  db_->commit_async(std::move(t), [&](result<generation, api::api_error> r) { good.set_value(std::move(r)); });
  auto refused = db_->begin();
  refused.set(cls("VM"), "OpaqueRef:missing", fld("VM", "name_label"), value("x"));
  db_->commit_async(std::move(refused), [&](result<generation, api::api_error> r) { bad.set_value(std::move(r)); });
  auto g = good.get_future().get();
  ASSERT_TRUE(g.ok());
  EXPECT_GE(db_->current_generation(), *g) << "the outcome came before the state was published";
  EXPECT_NE(db_->snapshot()->get<api::vm>(ref), nullptr);
  EXPECT_API_ERROR(bad.get_future().get(), HANDLE_INVALID, "VM", "OpaqueRef:missing");
}

// Deleting must not cost memory for ever (a login and logout each left a session's record):
// past the number kept, the oldest tombstones go, on disk too.
TEST_F(storage_test, only_the_most_recent_tombstones_are_kept) {
  db_.reset();
  database_options o{dir_.path() + "/db", &clock_, &ids_};
  o.tombstones_kept = 3;
  auto r = database::open(o);
  ASSERT_TRUE(r.ok());
  db_ = std::move(r).value();
  std::vector<std::string> refs;
  for (int i = 0; i < 6; ++i) refs.push_back(create_vm("vm" + std::to_string(i)));
  for (const auto& ref : refs) {
    auto t = db_->begin();
    t.destroy(cls("VM"), ref);
    commit(t);
  }
  auto count_tombstones = [&] {
    std::size_t n = 0;
    db_->snapshot()->for_each(cls("VM"), [&](const std::string&, const row& row) { return n += row.deleted != 0, true; }, true);
    return n;
  };
  EXPECT_EQ(count_tombstones(), 3u);
  EXPECT_EQ(db_->snapshot()->find_any(cls("VM"), refs[2]), nullptr);
  EXPECT_NE(db_->snapshot()->find_any(cls("VM"), refs[3]), nullptr);
  db_.reset();
  r = database::open(o);
  ASSERT_TRUE(r.ok());
  db_ = std::move(r).value();
  EXPECT_EQ(count_tombstones(), 3u);  // the forgotten ones are gone from disk too
  // A batch that deletes more than are kept keeps only the newest.
  auto t = db_->begin();
  for (int i = 0; i < 5; ++i) t.create(api::vm{});
  commit(t);
  std::vector<std::string> more;
  db_->snapshot()->for_each(cls("VM"), [&](const std::string& ref, const row&) { return more.push_back(ref), true; });
  t = db_->begin();
  for (const auto& ref : more) t.destroy(cls("VM"), ref);
  commit(t);
  EXPECT_EQ(count_tombstones(), 3u);
}

// A class without events (sessions, secrets) keeps no tombstone: no "del" event will ever want
// its snapshot, and a session's record (its permissions) is tens of kilobytes.
TEST_F(storage_test, rows_of_classes_without_events_leave_no_tombstone) {
  auto t = db_->begin();
  std::string session = t.create(api::session{});
  commit(t);
  auto d = db_->begin();
  d.destroy(cls("session"), session);
  commit(d);
  EXPECT_EQ(db_->snapshot()->find_any(cls("session"), session), nullptr);
  reopen();
  EXPECT_EQ(db_->snapshot()->find_any(cls("session"), session), nullptr);
}

TEST_F(storage_test, only_recent_log_entries_are_kept) {
  db_.reset();
  database_options o{dir_.path() + "/db", &clock_, &ids_};
  o.log_entries = 3;
  auto r = database::open(o);
  ASSERT_TRUE(r.ok());
  db_ = std::move(r).value();
  generation start = db_->current_generation();
  for (int i = 0; i < 6; ++i) create_vm("vm" + std::to_string(i));
  auto recent = db_->export_entries_after(db_->current_generation() - 3);
  ASSERT_TRUE(recent.ok()) << recent.error();
  EXPECT_EQ(recent->size(), 3u);
  auto old = db_->export_entries_after(start);
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.error().find("no longer kept"), std::string::npos) << old.error();
}

TEST_F(storage_test, log_entries_round_trip) {
  log_entry e{7, 1234, {op{op_kind::create, 3, "OpaqueRef:x", 0, "", value(wire::structure{{"a", value(1)}})},
                        op{op_kind::set, 3, "OpaqueRef:x", 5, "", value("v")},
                        op{op_kind::destroy, 3, "OpaqueRef:x", 0, "", value()}}};
  auto back = decode_log_entry(encode(e));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, e);
  EXPECT_FALSE(decode_log_entry("garbage").ok());
}

TEST(storage_open, a_newer_schema_version_is_refused_and_left_alone) {
  testing::temp_dir dir;
  {
    auto db = database::open({dir.path() + "/db"});
    ASSERT_TRUE(db.ok());
  }
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir.path() + "/db", &raw).ok());
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), "m:schema", "2").ok());
    delete raw;
  }
  auto db = database::open({dir.path() + "/db"});
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.error().find("schema version 2"), std::string::npos) << db.error();
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir.path() + "/db", &raw).ok());
  std::string v;
  ASSERT_TRUE(raw->Get(rocksdb::ReadOptions(), "m:schema", &v).ok());
  EXPECT_EQ(v, "2");
  delete raw;
}

TEST(storage_open, corrupted_files_are_a_clear_error_at_start) {
  testing::temp_dir dir;
  {
    auto db = database::open({dir.path() + "/db"});
    ASSERT_TRUE(db.ok());
    auto t = (*db)->begin();
    api::vm rec;
    rec.name_label = "precious";
    t.create(rec);
    ASSERT_TRUE((*db)->commit(std::move(t)).ok());
  }
  // Damage every byte range of every file in turn would be slow; damage the middle of each.
  for (const auto& entry : std::filesystem::directory_iterator(dir.path() + "/db")) {
    std::string name = entry.path().filename().string();
    if (name.ends_with(".log") || name.starts_with("MANIFEST")) {
      std::fstream f(entry.path(), std::ios::in | std::ios::out | std::ios::binary);
      auto size = std::filesystem::file_size(entry.path());
      if (size < 64) continue;
      f.seekp(static_cast<std::streamoff>(size / 2));
      std::string junk(16, '\xA5');
      f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
  }
  auto db = database::open({dir.path() + "/db"});
  ASSERT_FALSE(db.ok()) << "a damaged database opened as if nothing happened";
  EXPECT_NE(db.error().find(dir.path()), std::string::npos) << db.error();
}

TEST(storage_open, a_directory_of_something_else_is_refused) {
  testing::temp_dir dir;
  {
    rocksdb::DB* raw = nullptr;
    rocksdb::Options o;
    o.create_if_missing = true;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir.path() + "/db", &raw).ok());
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), "other", "data").ok());
    delete raw;
  }
  auto db = database::open({dir.path() + "/db"});
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.error().find("not a xapid database"), std::string::npos) << db.error();
}

}  // namespace
}  // namespace xapid::storage
