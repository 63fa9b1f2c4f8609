// Idempotency keys (storage/keyed_outcomes.hpp) on a real RocksDB: a proposal whose key was
// applied before takes that first outcome and changes nothing — a success its generation, a
// refusal its error, even once the refusal's reason has gone — across a restart, through a
// checkpoint installed elsewhere, and within the number of keys kept (the oldest go first, on
// disk as in memory). The keys come from a sequencer that stamps each proposal with the key the
// test chose, as a pool member's forwarding does.
#include "tests/unit/storage_test_fixture.hpp"

#include "proto/wire/binary.hpp"

namespace xapid::storage {
namespace {

// This host's own order, each proposal stamped with `key` first.
class keying_sequencer final : public sequencer {
 public:
  std::string key;
  result<void, std::string> start(ordered_database db) override { return inner_.start(std::move(db)); }
  bool order_and_wait(const std::shared_ptr<proposal>& p) override {
    p->key = key;
    return inner_.order_and_wait(p);
  }
  bool order(const std::shared_ptr<proposal>& p) override {
    p->key = key;
    return inner_.order(p);
  }
  void stop() override { inner_.stop(); }

 private:
  local_sequencer inner_;
};

class keyed_test : public ::testing::Test {
 protected:
  void SetUp() override { open(dir_.path() + "/db"); }

  void open(const std::string& path, std::size_t kept = 131072) {
    db_.reset();
    order_ = std::make_shared<keying_sequencer>();
    database_options o;
    o.path = path;
    o.clk = &clock_;
    o.ids = &ids_;
    o.order = order_;
    o.keyed_outcomes_kept = kept;
    auto r = database::open(o);
    ASSERT_TRUE(r.ok()) << r.error();
    db_ = std::move(r).value();
  }

  // Creates a VM named `name` under `key`; the commit's outcome and the ref it chose.
  std::pair<result<generation, api::api_error>, std::string> create_vm(const std::string& key, const std::string& name) {
    order_->key = key;
    auto t = db_->begin();
    api::vm rec;
    rec.name_label = name;
    std::string ref = t.create(rec);
    return {db_->commit(std::move(t)), ref};
  }
  std::size_t vms() const { return db_->snapshot()->count(cls("VM")); }

  testing::temp_dir dir_;
  manual_clock clock_;
  id_source ids_{42};
  std::shared_ptr<keying_sequencer> order_;
  std::unique_ptr<database> db_;
};

TEST_F(keyed_test, a_key_applied_before_answers_its_first_outcome_and_changes_nothing) {
  auto [first, ref] = create_vm("key-1", "first");
  ASSERT_TRUE(first.ok());
  const generation at = db_->current_generation();
  // The same key again, with other operations (a sender that made its proposal anew would
  // still use the key of the write it sends again): nothing is created, the first answer comes.
  auto [again, other_ref] = create_vm("key-1", "again");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(db_->current_generation(), at) << "no generation is taken";
  EXPECT_EQ(vms(), 1u);
  EXPECT_EQ(db_->snapshot()->get<api::vm>(other_ref), nullptr);
  // Another key is another write; no key is never deduplicated.
  EXPECT_TRUE(create_vm("key-2", "second").first.ok());
  EXPECT_TRUE(create_vm("", "unkeyed").first.ok());
  EXPECT_TRUE(create_vm("", "unkeyed").first.ok());
  EXPECT_EQ(vms(), 4u);
}

TEST_F(keyed_test, a_refusal_is_answered_again_even_once_its_reason_has_gone) {
  auto [made, ref] = create_vm("", "vm");
  ASSERT_TRUE(made.ok());
  auto rename_if_unchanged_since = [&](generation g) {
    order_->key = "rename";
    auto t = db_->begin();
    t.expect_unchanged(cls("VM"), ref, g, api::errors::OTHER_OPERATION_IN_PROGRESS("VM", ref));
    t.set(cls("VM"), ref, fld("VM", "name_label"), value("renamed"));
    return db_->commit(std::move(t));
  };
  auto refused = rename_if_unchanged_since(*made + 100);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, api::error_code::OTHER_OPERATION_IN_PROGRESS);
  // Its precondition would hold now; the key's outcome was a refusal, and stays one.
  auto again = rename_if_unchanged_since(*made);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error(), refused.error());
  EXPECT_EQ(db_->snapshot()->get<api::vm>(ref)->name_label, "vm");
}

TEST_F(keyed_test, keys_survive_a_restart_and_travel_in_checkpoints) {
  auto [first, ref] = create_vm("key-1", "first");
  ASSERT_TRUE(first.ok());
  open(dir_.path() + "/db");
  auto [again, _] = create_vm("key-1", "after the restart");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(vms(), 1u);

  // A replica that installs the checkpoint knows the key too, and writes the same bytes.
  const std::string checkpoint = db_->export_checkpoint();
  open(dir_.path() + "/replica");
  ASSERT_TRUE(db_->import_checkpoint(checkpoint).ok());
  EXPECT_EQ(db_->export_checkpoint(), checkpoint);
  auto [on_replica, __] = create_vm("key-1", "on the replica");
  ASSERT_TRUE(on_replica.ok());
  EXPECT_EQ(*on_replica, *first);
  EXPECT_EQ(vms(), 1u);
  open(dir_.path() + "/replica");  // and the installed keys were stored
  EXPECT_EQ(*create_vm("key-1", "restarted replica").first, *first);
  EXPECT_EQ(vms(), 1u);
}

TEST_F(keyed_test, only_the_last_keys_are_kept_on_disk_as_in_memory) {
  open(dir_.path() + "/small", 3);
  for (const char* key : {"a", "b", "c", "d"}) ASSERT_TRUE(create_vm(key, key).first.ok());
  ASSERT_EQ(vms(), 4u);
  // "a" was pushed out by "d": applied again. "b".."d" are kept (after a restart too).
  open(dir_.path() + "/small", 3);
  const generation before = db_->current_generation();
  EXPECT_TRUE(create_vm("c", "c again").first.ok());
  EXPECT_EQ(db_->current_generation(), before);
  EXPECT_TRUE(create_vm("a", "a again").first.ok());  // pushes out "b"
  EXPECT_EQ(db_->current_generation(), before + 1);
  EXPECT_EQ(vms(), 5u);
  open(dir_.path() + "/small", 3);
  EXPECT_TRUE(create_vm("b", "b again").first.ok());
  EXPECT_EQ(vms(), 6u);
  // Three keys on disk, whatever went before.
  db_.reset();
  std::unique_ptr<rocksdb::DB> raw;
  {
    rocksdb::DB* opened = nullptr;
    ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), dir_.path() + "/small", &opened).ok());
    raw.reset(opened);
  }
  std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator(rocksdb::ReadOptions()));
  std::size_t stored = 0;
  for (it->Seek("k"); it->Valid() && it->key().starts_with("k"); it->Next()) ++stored;
  EXPECT_EQ(stored, 3u);
}

TEST_F(keyed_test, concurrent_sends_of_one_key_apply_it_once) {
  // Sent again while the first is still on its way (both may fall in one batch).
  order_->key = "twice";
  std::promise<void> both;
  std::atomic<int> done{0};
  for (int i = 0; i < 2; ++i) {
    auto t = db_->begin();
    api::vm rec;
    rec.name_label = "sent " + std::to_string(i);
    t.create(rec);
    db_->commit_async(std::move(t), [&](result<generation, api::api_error> r) {
      EXPECT_TRUE(r.ok());
      if (++done == 2) both.set_value();
    });
  }
  both.get_future().wait();
  EXPECT_EQ(vms(), 1u);
}

// Private values (root's password hash): set by a transaction, applied with it or not at all,
// kept across a restart, carried in checkpoints (every replica writes the same bytes), read by no
// API call (no row holds them).
TEST_F(keyed_test, private_values_are_replicated_state_that_no_row_shows) {
  EXPECT_EQ(db_->private_value("root-password-hash"), std::nullopt);
  auto t = db_->begin();
  t.set_private("root-password-hash", "$y$first");
  ASSERT_TRUE(db_->commit(std::move(t)).ok());
  EXPECT_EQ(db_->private_value("root-password-hash"), "$y$first");

  // With a transaction that fails, nothing of it is set.
  auto [made, ref] = create_vm("", "vm");
  ASSERT_TRUE(made.ok());
  auto refused = db_->begin();
  refused.set_private("root-password-hash", "$y$never");
  refused.expect_unchanged(cls("VM"), ref, *made + 100, api::errors::OTHER_OPERATION_IN_PROGRESS("VM", ref));
  ASSERT_FALSE(db_->commit(std::move(refused)).ok());
  EXPECT_EQ(db_->private_value("root-password-hash"), "$y$first");
  auto too_big = db_->begin();
  too_big.set_private("root-password-hash", std::string(database::max_private_value_bytes + 1, 'x'));
  EXPECT_FALSE(db_->commit(std::move(too_big)).ok());

  open(dir_.path() + "/db");
  EXPECT_EQ(db_->private_value("root-password-hash"), "$y$first");
  const std::string checkpoint = db_->export_checkpoint();
  EXPECT_EQ(checkpoint.find("$y$first") != std::string::npos, true);
  open(dir_.path() + "/replica");
  ASSERT_TRUE(db_->import_checkpoint(checkpoint).ok());
  EXPECT_EQ(db_->private_value("root-password-hash"), "$y$first");
  EXPECT_EQ(db_->export_checkpoint(), checkpoint);
  open(dir_.path() + "/replica");
  EXPECT_EQ(db_->private_value("root-password-hash"), "$y$first");
  // No row of any class holds it.
  const auto& sch = schema::get();
  for (std::size_t c = 0; c < sch.tables().size(); ++c)
    db_->snapshot()->for_each(c, [&](const std::string&, const row& r) {
      EXPECT_EQ(wire::binary::encode(wire::built(record_value(sch.table(c), r.record))).find("$y$first"), std::string::npos);
      return true;
    });
}

}  // namespace
}  // namespace xapid::storage
