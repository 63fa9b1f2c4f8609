// The pool database on a real RocksDB in a temporary directory: indexes, bound fields,
// transactions, tombstones, the change feed; opening files of other kinds (the log and its
// order: storage_log_test.cpp).
#include "tests/unit/storage_test_fixture.hpp"

#include "proto/wire/jsonrpc.hpp"
#include "proto/wire/xmlrpc.hpp"
#include "tests/support/test_seed.hpp"

namespace xapid::storage {
namespace {

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

TEST_F(storage_test, a_table_answered_in_pieces_is_byte_for_byte_its_whole_answer_in_every_format) {
  // Thousands of VMs (with names that need escaping, and a deleted one whose tombstone the
  // answer must skip), and a class of one row.
  auto t = db_->begin();
  std::vector<std::string> refs;
  for (int i = 0; i < 3000; ++i) {
    api::vm rec;
    rec.name_label = "vm <" + std::to_string(i) + "> & \"quoted\"";
    rec.other_config = {{"k\n", "v\t"}};
    refs.push_back(t.create(rec));
  }
  commit(t);
  auto d = db_->begin();
  d.destroy(cls("VM"), refs[17]);
  commit(d);
  create_vm("one");
  auto snap = db_->snapshot();
  const wire::jsonrpc::request v1{{}, wire::jsonrpc::version::v1_0, "1"}, v2{{}, wire::jsonrpc::version::v2_0, "\"x\""};
  auto gather = [](wire::answer_pieces& p) {
    std::string all;
    std::size_t pieces = 0;
    while (!p.finished()) {
      all.append(p.next({}));
      ++pieces;
    }
    return std::pair(all, pieces);
  };
  // What a reader may see of a row: here the name blanked, as the read rules clear fields.
  row_view blank_name = [](const std::shared_ptr<const void>& rec) -> std::shared_ptr<const void> {
    auto copy = std::make_shared<api::vm>(*static_cast<const api::vm*>(rec.get()));
    copy->name_label.clear();
    return copy;
  };
  for (std::size_t c : {cls("VM"), cls("pool"), cls("host")}) {
    for (const row_view& view : {row_view(), blank_name}) {
      if (view && c != cls("VM")) continue;
      const wire::response r{true, all_records_value(snap, c, view), {}};
      const std::size_t rows = snap->count(c);
      SCOPED_TRACE(std::string(schema::get().table(c).desc->name) + (view ? " through a view" : ""));
      auto [xml, xml_pieces] = gather(*wire::xmlrpc::write_response_in_pieces(r));
      EXPECT_EQ(xml, wire::xmlrpc::write_response(r));
      auto [json1, json1_pieces] = gather(*wire::jsonrpc::write_response_in_pieces(v1, r));
      EXPECT_EQ(json1, wire::jsonrpc::write_response(v1, r));
      auto [json2, json2_pieces] = gather(*wire::jsonrpc::write_response_in_pieces(v2, r));
      EXPECT_EQ(json2, wire::jsonrpc::write_response(v2, r));
      if (rows > 1000) {
        EXPECT_GE(xml_pieces, xml.size() / (2 * wire::answer_piece_bytes));
        EXPECT_GE(json2_pieces, json2.size() / (2 * wire::answer_piece_bytes));
        EXPECT_EQ(wire::built(r.result).as_struct()->size(), 3000u) << "every live VM, the deleted one not";
      } else {
        EXPECT_EQ(xml_pieces, 1u);
        EXPECT_EQ(json1_pieces, 1u);
      }
    }
  }
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

  std::mt19937_64 rng(testing::test_seed());
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
