// The pool database's log and its order, on a real RocksDB: durability across reopening,
// replicas from checkpoints and entries, preconditions between racing writers, the sequencer,
// asynchronous commits, and what is kept of tombstones and entries.
#include "tests/unit/storage_test_fixture.hpp"

namespace xapid::storage {
namespace {

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
  result<void, std::string> start(ordered_database db) override {
    auto apply = std::move(db.apply);
    db.apply = [this, apply](std::span<const std::shared_ptr<proposal>> batch) {
      {
        std::lock_guard lock(mu);
        batch_sizes.push_back(batch.size());
        for (const auto& p : batch) times.push_back(p->time_ms);
      }
      apply(batch);
      for (const auto& p : batch) EXPECT_TRUE(p->outcome.has_value()) << "apply left a proposal without its outcome";
    };
    return inner_.start(std::move(db));
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

}  // namespace
}  // namespace xapid::storage
