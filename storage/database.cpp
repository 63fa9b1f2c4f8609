#include "storage/database.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "common/waiting.hpp"
#include "proto/wire/binary.hpp"
#include "xapid/api/rows.hpp"

namespace xapid::storage {
namespace {

// Keys: "m:schema", "m:gen", "m:log_index" (the replicated log's position, when ordered by one); "r" + class (2 bytes, big-endian) + ref for rows; "l" + generation
// (8 bytes, big-endian) for log entries, "k" + place (8 bytes, big-endian) for the idempotency
// keys kept (keyed_outcomes), so each sorts in order; "p" + name for the private values.
const std::string key_schema = "m:schema";
const std::string key_gen = "m:gen";
const std::string key_log_index = "m:log_index";

std::string row_key(std::size_t cls, std::string_view ref) {
  std::string k = "r";
  k.push_back(static_cast<char>(cls >> 8));
  k.push_back(static_cast<char>(cls & 0xff));
  k.append(ref);
  return k;
}

std::string numbered_key(char prefix, std::uint64_t n) {
  std::string k(1, prefix);
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return k;
}
std::string log_key(generation g) { return numbered_key('l', g); }
std::string keyed_key(std::uint64_t place) { return numbered_key('k', place); }
std::uint64_t number_of(std::string_view key) {
  std::uint64_t n = 0;
  for (std::size_t i = 1; i < 9 && i < key.size(); ++i) n = (n << 8) | static_cast<unsigned char>(key[i]);
  return n;
}

// The private values on disk.
result<void, std::string> load_private(rocksdb::DB& db, std::map<std::string, std::string, std::less<>>& out, const std::string& path) {
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("p"); it->Valid() && it->key().starts_with("p"); it->Next())
    out.insert_or_assign(it->key().ToString().substr(1), it->value().ToString());
  if (!it->status().ok()) return fail("cannot read the private values of " + path + ": " + it->status().ToString());
  return ok_v;
}

// The idempotency keys kept on disk, in place order.
result<void, std::string> load_keyed(rocksdb::DB& db, keyed_outcomes& keyed, const std::string& path) {
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("k"); it->Valid() && it->key().starts_with("k"); it->Next()) {
    if (it->key().size() != 9) return fail("a kept key of " + path + " has a malformed name");
    if (auto r = keyed.load(number_of(it->key().ToStringView()), it->value().ToStringView()); !r)
      return fail("the kept keys of " + path + ": " + r.error());
  }
  if (!it->status().ok()) return fail("cannot read the kept keys of " + path + ": " + it->status().ToString());
  return ok_v;
}

// A row on disk: [created, modified, deleted, [field values in catalog order]].
// Written field by field, as the binary form of that array would be, without building it.
std::string encode_row(const table_schema& ts, const row& r) {
  std::string out;
  out.reserve(512);
  wire::binary::append_array_header(out, 4);
  wire::binary::append(out, wire::value(static_cast<std::int64_t>(r.created)));
  wire::binary::append(out, wire::value(static_cast<std::int64_t>(r.modified)));
  wire::binary::append(out, wire::value(static_cast<std::int64_t>(r.deleted)));
  wire::binary::append_array_header(out, ts.desc->fields.size());
  for (std::size_t f = 0; f < ts.desc->fields.size(); ++f) {
    // A derived field is stored as empty: it is rebuilt from the other side at load, and a row
    // is never rewritten because a partner joined or left it.
    if (ts.bindings[f] && ts.bindings[f]->derived) wire::binary::append_array_header(out, 0);
    else wire::binary::append(out, ts.ops->get_field(r.record.get(), f));
  }
  return out;
}

// Read straight into the typed record (api::decode_fields): start-up decodes every row, and a
// tree of wire values per row made it several times a raw scan of the same bytes.
result<row, std::string> decode_row(const table_schema& ts, std::string_view bytes) {
  wire::limits lim;
  lim.max_body_bytes = std::size_t{1} << 31;
  wire::binary::reader in(bytes, lim);
  std::uint64_t n = 0;
  std::int64_t created = 0, modified = 0, deleted = 0;
  if (!in.array(n) || n != 4 || !in.integer(created) || !in.integer(modified) || !in.integer(deleted))
    return fail("row has the wrong shape" + (in.error().empty() ? std::string() : ": " + in.error()));
  std::shared_ptr<void> rec = ts.ops->make_shared(nullptr);
  if (!api::decode_fields(ts.index, rec.get(), in)) return fail("record does not fit its class: " + in.error());
  if (!in.at_end()) return fail(std::string("trailing bytes after the row"));
  return row{std::move(rec), static_cast<generation>(created), static_cast<generation>(modified),
             static_cast<generation>(deleted)};
}

std::string status_text(const rocksdb::Status& s) { return s.ToString(); }

// Start-up: one thread reads and decodes the rows, this one indexes them into `st`, batch by
// batch — decoding and indexing each take about half the time, so the two overlap.
result<void, std::string> load_rows(rocksdb::DB& rdb, state& st, const std::string& path) {
  struct decoded {
    std::size_t cls;
    std::string ref;
    row r;
  };
  constexpr std::size_t batch_rows = 512, batches_ahead = 8;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::vector<decoded>> ready;
  bool reading_done = false, stop_reading = false;
  std::string error;

  std::thread reader([&] {
    const auto& sch = schema::get();
    rocksdb::ReadOptions ro;
    ro.verify_checksums = true;
    std::unique_ptr<rocksdb::Iterator> it(rdb.NewIterator(ro));
    std::vector<decoded> batch;
    std::string failure;
    auto hand_over = [&](bool last) {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return ready.size() < batches_ahead || stop_reading; });
      if (!batch.empty()) ready.push_back(std::move(batch));
      batch.clear();
      if (last) {
        reading_done = true;
        error = std::move(failure);
      }
      cv.notify_all();
      return !stop_reading;
    };
    for (it->Seek("r"); it->Valid() && it->key().starts_with("r"); it->Next()) {
      std::string_view key(it->key().data(), it->key().size());
      if (key.size() < 3) {
        failure = "corrupt row key in " + path;
        break;
      }
      std::size_t cls = (static_cast<unsigned char>(key[1]) << 8) | static_cast<unsigned char>(key[2]);
      if (cls >= sch.tables().size()) {
        failure = "row of an unknown class in " + path;
        break;
      }
      auto r = decode_row(sch.table(cls), std::string_view(it->value().data(), it->value().size()));
      if (!r) {
        failure = "corrupt row " + std::string(key.substr(3)) + " in " + path + ": " + r.error();
        break;
      }
      batch.push_back({cls, std::string(key.substr(3)), std::move(r).value()});
      if (batch.size() == batch_rows && !hand_over(false)) return;
    }
    if (failure.empty() && !it->status().ok()) failure = "cannot read the rows of " + path + ": " + status_text(it->status());
    hand_over(true);
  });

  for (;;) {
    std::vector<decoded> batch;
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return !ready.empty() || reading_done; });
      if (ready.empty()) break;
      batch = std::move(ready.front());
      ready.pop_front();
      if (!error.empty()) break;  // a failed read: what came before it is not used either
      cv.notify_all();
    }
    for (auto& d : batch) st.load_row(d.cls, std::move(d.ref), std::move(d.r));
  }
  {
    std::lock_guard lock(mu);
    stop_reading = true;
  }
  cv.notify_all();
  reader.join();
  if (!error.empty()) return fail(std::move(error));
  return ok_v;
}


}  // namespace

// ------------------------------------------------------------------ transaction

std::string transaction::create(std::size_t cls, wire::value record) {
  const table_schema& ts = schema::get().table(cls);
  std::string ref = ts.secret_refs ? ids_->secret_ref() : ids_->opaque_ref();
  // The uuid is chosen here, with the ref, so that the entry fixes it: applying an entry must
  // give the same row on every member.
  if (ts.uuid_field) {
    if (wire::structure* members = record.as_struct()) {
      const std::string_view name = ts.desc->fields[*ts.uuid_field].name;
      auto it = std::find_if(members->begin(), members->end(), [&](const wire::member& m) { return m.first == name; });
      if (it == members->end()) members->emplace_back(std::string(name), wire::value(ids_->uuid()));
      else if (const std::string* u = it->second.as_string(); u && u->empty()) it->second = wire::value(ids_->uuid());
    }
  }
  ops_.push_back(op{op_kind::create, static_cast<std::uint32_t>(cls), ref, 0, {}, std::move(record)});
  return ref;
}

void transaction::set(std::size_t cls, std::string ref, std::size_t field, wire::value v) {
  ops_.push_back(op{op_kind::set, static_cast<std::uint32_t>(cls), std::move(ref), static_cast<std::uint32_t>(field), {},
                    std::move(v)});
}

void transaction::update(std::size_t cls, const std::string& ref, const void* before, const void* after) {
  const table_schema& ts = schema::get().table(cls);
  for (std::size_t f = 0; f < ts.desc->fields.size(); ++f) {
    if (ts.bindings[f] && ts.bindings[f]->derived) continue;  // the database's to set, never a writer's
    wire::value next = ts.ops->get_field(after, f);
    if (ts.ops->get_field(before, f) != next) set(cls, ref, f, std::move(next));
  }
}

void transaction::add_to_set(std::size_t cls, std::string ref, std::size_t field, wire::value elem) {
  ops_.push_back(op{op_kind::add_to_set, static_cast<std::uint32_t>(cls), std::move(ref),
                    static_cast<std::uint32_t>(field), {}, std::move(elem)});
}

void transaction::remove_from_set(std::size_t cls, std::string ref, std::size_t field, wire::value elem) {
  ops_.push_back(op{op_kind::remove_from_set, static_cast<std::uint32_t>(cls), std::move(ref),
                    static_cast<std::uint32_t>(field), {}, std::move(elem)});
}

void transaction::add_to_map(std::size_t cls, std::string ref, std::size_t field, std::string key, wire::value v) {
  ops_.push_back(op{op_kind::add_to_map, static_cast<std::uint32_t>(cls), std::move(ref),
                    static_cast<std::uint32_t>(field), std::move(key), std::move(v)});
}

void transaction::remove_from_map(std::size_t cls, std::string ref, std::size_t field, std::string key) {
  ops_.push_back(op{op_kind::remove_from_map, static_cast<std::uint32_t>(cls), std::move(ref),
                    static_cast<std::uint32_t>(field), std::move(key), {}});
}

void transaction::expect_unchanged(std::size_t cls, std::string ref, generation modified, const api::api_error& error) {
  ops_.push_back(op{op_kind::expect_unchanged, static_cast<std::uint32_t>(cls), std::move(ref), 0,
                    encode_error(error.description()), wire::value(static_cast<std::int64_t>(modified))});
}

void transaction::expect_field(std::size_t cls, std::string ref, std::size_t field, wire::value v,
                               const api::api_error& error) {
  ops_.push_back(op{op_kind::expect_field, static_cast<std::uint32_t>(cls), std::move(ref),
                    static_cast<std::uint32_t>(field), encode_error(error.description()), std::move(v)});
}

void transaction::set_private(std::string name, std::string value) {
  ops_.push_back(op{op_kind::set_private, 0, std::move(name), 0, {}, wire::value(std::move(value))});
}

void transaction::destroy(std::size_t cls, std::string ref) {
  ops_.push_back(op{op_kind::destroy, static_cast<std::uint32_t>(cls), std::move(ref), 0, {}, {}});
}

// ------------------------------------------------------------------ open, prepare

result<std::unique_ptr<database>, std::string> database::open(database_options options) {
  std::unique_ptr<database> db(new database());
  db->options_ = options;
  db->order_ = options.order ? options.order : std::make_shared<local_sequencer>();
  if (!options.clk) db->own_clock_ = std::make_unique<real_clock>();
  if (!options.ids) db->own_ids_ = std::make_unique<id_source>();
  db->clock_ = options.clk ? options.clk : db->own_clock_.get();
  db->ids_ = options.ids ? options.ids : db->own_ids_.get();
  db->keyed_ = std::make_unique<keyed_outcomes>(options.keyed_outcomes_kept);

  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.paranoid_checks = true;
  // A torn record at the very end of the WAL is a write that was never acknowledged; any other
  // damage stops the open rather than silently dropping acknowledged writes.
  opts.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  opts.max_open_files = 256;
  // Rows and recent entries are small; a small memtable keeps their second copy in memory small.
  // Rows have random keys, so every flush overlaps the whole of the next level: with levels
  // sized from the last one (dynamic) and a small first level, a commit's share of compaction
  // stays about the same as the database grows (at 100,000 VMs: half the bytes on disk, and a create's
  // CPU 0.37-0.47 against 0.48-0.57 ms with a 1 MiB memtable and the default 256 MiB level).
  opts.write_buffer_size = 4u << 20;
  opts.level_compaction_dynamic_level_bytes = true;
  opts.max_bytes_for_level_base = 16u << 20;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(opts, options.path, &raw);
  if (!s.ok()) return fail("cannot open the database in " + options.path + ": " + status_text(s));
  db->db_.reset(raw);

  std::string version;
  s = db->db_->Get(rocksdb::ReadOptions(), key_schema, &version);
  if (s.IsNotFound()) {
    std::unique_ptr<rocksdb::Iterator> it(db->db_->NewIterator(rocksdb::ReadOptions()));
    it->SeekToFirst();
    if (it->Valid()) return fail("the database in " + options.path + " has no schema version: not a xapid database");
    rocksdb::WriteOptions wo;
    wo.sync = true;
    rocksdb::WriteBatch b;
    b.Put(key_schema, std::to_string(schema_version));
    b.Put(key_gen, "0");
    if (s = db->db_->Write(wo, &b); !s.ok()) return fail("cannot initialise " + options.path + ": " + status_text(s));
    version = std::to_string(schema_version);
  } else if (!s.ok()) {
    return fail("cannot read " + options.path + ": " + status_text(s));
  }
  if (version != std::to_string(schema_version))
    return fail("the database in " + options.path + " has schema version " + version + "; this xapid reads version " +
                std::to_string(schema_version) + " and will not touch it");

  auto st = std::make_shared<state>();
  std::string gen_text;
  if (s = db->db_->Get(rocksdb::ReadOptions(), key_gen, &gen_text); !s.ok())
    return fail("cannot read the generation of " + options.path + ": " + status_text(s));
  st->set_generation(std::stoull(gen_text));
  std::string log_index_text;
  if (s = db->db_->Get(rocksdb::ReadOptions(), key_log_index, &log_index_text); s.ok())
    db->applied_log_index_ = std::stoull(log_index_text);
  else if (!s.IsNotFound())
    return fail("cannot read the log position of " + options.path + ": " + status_text(s));

  if (auto loaded = load_rows(*db->db_, *st, options.path); !loaded) return fail(loaded.error());
  if (auto loaded = load_keyed(*db->db_, *db->keyed_, options.path); !loaded) return fail(loaded.error());
  if (auto loaded = load_private(*db->db_, db->private_, options.path); !loaded) return fail(loaded.error());
  st->derive_after_load();

  db->feed_start_ = st->gen();
  db->index_tombstones(*st);
  db->current_ = std::move(st);
  database* d = db.get();
  if (auto started = db->order_->start({[d](std::span<const std::shared_ptr<proposal>> batch) { d->apply(batch); },
                                        [d] { return d->applied_log_index_.load(); },
                                        [d] { return d->export_checkpoint(); }});
      !started)
    return fail("cannot order the commits of " + options.path + ": " + started.error());
  return db;
}

database::~database() { order_->stop(); }

std::shared_ptr<const state> database::snapshot() const {
  std::lock_guard lock(state_mu_);
  return current_;
}

// Prepare: the proposal fixes every value its entry will hold, the time included.
result<generation, api::api_error> database::commit(transaction t) {
  auto p = std::make_shared<proposal>();
  p->ops = std::move(t.ops());
  p->time_ms = clock_->now_ms();
  return order_and_wait(std::move(p));
}

void database::commit_async(transaction t, commit_done done) {
  auto p = std::make_shared<proposal>();
  p->ops = std::move(t.ops());
  p->time_ms = clock_->now_ms();
  p->applied = [done](proposal& applied) { done(std::move(*applied.outcome)); };
  if (!order_->order(p)) done(fail(api::errors::INTERNAL_ERROR("the database is closing")));
}

result<generation, api::api_error> database::order_and_wait(std::shared_ptr<proposal> p) {
  const auto started = monotonic_now();
  waiting_scope waiting;  // for the disks (the pool's, in a pool): the caller's turn is another call's meanwhile
  if (!order_->order_and_wait(p)) return fail(api::errors::INTERNAL_ERROR("the database is closing"));
  commit_latency_.record(monotonic_now() - started);
  return std::move(*p->outcome);
}

// ------------------------------------------------------------------ apply

void database::apply(std::span<const std::shared_ptr<proposal>> batch) {
  if (batch.front()->k == proposal::kind::install) return apply_install(*batch.front());
  batches_.fetch_add(1, std::memory_order_relaxed);
  batched_.fetch_add(batch.size(), std::memory_order_relaxed);
  const auto& sch = schema::get();
  auto working = std::make_shared<state>(*snapshot());
  std::vector<change> changes;
  std::vector<result<generation, api::api_error>> outcomes;
  outcomes.reserve(batch.size());
  rocksdb::WriteBatch wb;
  std::set<std::pair<std::size_t, std::string>> collected;
  // The batch's keyed proposals, by the index of their outcome (kept once the batch is stored).
  std::vector<std::pair<std::string, std::size_t>> keyed_here;
  auto applied_before = [&](const std::string& key) -> const proposal_outcome* {
    for (const auto& [k, i] : keyed_here)
      if (k == key) return &outcomes[i];
    return keyed_->find(key);
  };
  // The position of the batch's entry, before a proposal applied earlier takes its own.
  const std::uint64_t log_index = batch.back()->log_index;
  // The private values the batch's transactions set, in order (kept once the batch is stored).
  std::vector<std::pair<std::string, std::string>> private_here;

  for (auto& p : batch) {
    if (p->k == proposal::kind::collect) {
      std::vector<std::string> dead;
      for (std::size_t c = 0; c < sch.tables().size(); ++c) {
        dead.clear();
        working->for_each(c, [&](const std::string& ref, const row& r) {
          if (r.deleted && r.deleted <= p->collect_up_to) dead.push_back(ref);
          return true;
        }, true);
        for (const auto& ref : dead) {
          working->erase_tombstone(c, ref);
          collected.emplace(c, ref);
        }
      }
      outcomes.emplace_back(working->gen());
      continue;
    }
    if (!p->key.empty() && p->k == proposal::kind::transaction) {
      // Sent again after a failover (its sender could not tell whether it was applied): it takes
      // the outcome it had, and changes nothing.
      if (const proposal_outcome* seen = applied_before(p->key)) {
        outcomes.push_back(*seen);
        continue;
      }
      keyed_here.emplace_back(p->key, outcomes.size());  // the index its outcome takes, below
    }
    generation gen = working->gen() + 1;
    if (p->k == proposal::kind::entry && p->fixed_gen != gen) {
      // An entry already applied (or one that would leave a gap): idempotent apply skips it.
      outcomes.emplace_back(p->fixed_gen <= working->gen()
                                ? result<generation, api::api_error>(p->fixed_gen)
                                : fail(api::errors::INTERNAL_ERROR("log entry " + std::to_string(p->fixed_gen) +
                                                                   " does not follow " + std::to_string(working->gen()))));
      continue;
    }
    // A failed operation changes nothing, so only a transaction of several needs a copy to
    // roll back to.
    std::optional<state> before;
    if (p->ops.size() > 1) before.emplace(*working);
    // A replicated entry is logged as it came, even when it fails (below).
    std::optional<std::vector<op>> as_received;
    if (p->k == proposal::kind::entry) as_received = p->ops;
    std::size_t changes_before = changes.size();
    const std::size_t private_before = private_here.size();
    std::optional<api::api_error> error;
    for (op& o : p->ops) {
      if (o.kind == op_kind::set_private) {
        const std::string* value = o.value.as_string();
        if (o.ref.empty() || o.ref.size() > max_private_name_bytes || !value || value->size() > max_private_value_bytes) {
          error = api::errors::INTERNAL_ERROR("a private value of the wrong size");
          break;
        }
        private_here.emplace_back(o.ref, *value);
        continue;
      }
      if (auto st = working->validate_and_normalize(o); !st) {
        error = st.error();
        break;
      }
      working->apply(o, gen, changes);
    }
    if (error) {
      if (before) *working = std::move(*before);
      changes.resize(changes_before);
      private_here.resize(private_before);
      if (p->k == proposal::kind::transaction) {
        // This host's own transaction is refused before it takes a place in the log: with a
        // local order, ordering and applying are one step, so its place is given here.
        outcomes.emplace_back(fail(std::move(*error)));
        continue;
      }
      // A replicated entry has its place whatever its outcome: every member fails it alike, at
      // the same generation, with nothing changed.
      p->ops = std::move(*as_received);
    }
    working->set_generation(gen);
    log_entry e{gen, p->time_ms, std::move(p->ops)};
    wb.Put(log_key(gen), encode(e));
    if (gen > options_.log_entries) wb.Delete(log_key(gen - options_.log_entries));
    outcomes.emplace_back(gen);
  }

  // Rows deleted by this batch become tombstones; past the number kept, the oldest are forgotten
  // here, in the same write (so collecting costs only what it collects).
  std::vector<tombstone> born;
  for (const auto& c : changes) {
    if (c.kind != change_kind::del) continue;
    if (sch.table(c.cls).has_events) {
      born.push_back({c.gen, c.cls, c.ref});
    } else if (const row* r = working->find_any(c.cls, c.ref); r && r->deleted) {  // no event wants it
      working->erase_tombstone(c.cls, c.ref);
      collected.emplace(c.cls, c.ref);
    }
  }
  std::size_t expired = 0;  // of tombstones_, then of born
  for (std::size_t total = tombstones_.size() + born.size(); total - expired > options_.tombstones_kept; ++expired) {
    const tombstone& t = expired < tombstones_.size() ? tombstones_[expired] : born[expired - tombstones_.size()];
    const row* r = working->find_any(t.cls, t.ref);
    if (r && r->deleted == t.deleted) {
      working->erase_tombstone(t.cls, t.ref);
      collected.emplace(t.cls, t.ref);
    }
  }

  // The rows as they stand after the whole batch, once each.
  std::set<std::pair<std::size_t, std::string>> dirty;
  for (const auto& c : changes)
    if (!c.derived_only) dirty.emplace(c.cls, c.ref);
  for (const auto& [cls, ref] : dirty) {
    if (const row* r = working->find_any(cls, ref)) wb.Put(row_key(cls, ref), encode_row(sch.table(cls), *r));
  }
  for (const auto& [cls, ref] : collected)
    if (!working->find_any(cls, ref)) wb.Delete(row_key(cls, ref));
  for (std::size_t i = 0; i < keyed_here.size(); ++i) {
    wb.Put(keyed_key(keyed_->next_place() + i), keyed_outcomes::encode(keyed_here[i].first, outcomes[keyed_here[i].second]));
    if (auto gone = keyed_->pushed_out_by(i)) wb.Delete(keyed_key(*gone));
  }
  for (const auto& [name, value] : private_here) wb.Put("p" + name, value);
  wb.Put(key_gen, std::to_string(working->gen()));
  // A batch from a replicated log: its position goes in the same write, which need not be
  // synced (the log holds the entry, and a restarted member replays what follows this position).
  if (log_index) wb.Put(key_log_index, std::to_string(log_index));

  rocksdb::WriteOptions wo;
  wo.sync = log_index == 0;
  rocksdb::Status s = db_->Write(wo, &wb);
  if (!s.ok()) {
    // Nothing of this batch is durable, so nothing of it is published or acknowledged.
    for (auto& p : batch) p->outcome = fail(api::errors::INTERNAL_ERROR("database write failed: " + status_text(s)));
  } else {
    const std::size_t from_old = std::min(expired, tombstones_.size());
    tombstones_.erase(tombstones_.begin(), tombstones_.begin() + static_cast<std::ptrdiff_t>(from_old));
    for (std::size_t i = expired - from_old; i < born.size(); ++i) tombstones_.push_back(std::move(born[i]));
    if (log_index) applied_log_index_ = log_index;
    {
      std::lock_guard lock(keyed_mu_);
      for (auto& [key, i] : keyed_here) keyed_->add(std::move(key), outcomes[i]);
      for (auto& [name, value] : private_here) private_.insert_or_assign(std::move(name), std::move(value));
      publish(std::move(working), std::move(changes));
    }
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i]->outcome = std::move(outcomes[i]);
  }
}

void database::publish(std::shared_ptr<const state> next, std::vector<change> changes) {
  {
    std::lock_guard lock(state_mu_);
    current_ = std::move(next);
    for (auto& c : changes) feed_.push_back(std::move(c));
    // Keep the feed to the configured number of generations.
    generation gen = current_->gen();
    while (!feed_.empty() && gen - feed_.front().gen >= options_.feed_generations) {
      feed_start_ = feed_.front().gen;
      feed_.pop_front();
    }
  }
  state_cv_.notify_all();
  const generation gen = current_generation();
  std::lock_guard lock(listeners_mu_);
  for (const auto& [id, listener] : publish_listeners_) listener(gen);
}

std::size_t database::on_publish(std::function<void(generation)> listener) {
  std::lock_guard lock(listeners_mu_);
  publish_listeners_.emplace(++next_listener_, std::move(listener));
  return next_listener_;
}

void database::remove_publish_listener(std::size_t id) {
  std::lock_guard lock(listeners_mu_);
  publish_listeners_.erase(id);
}

changes_since_result database::changes_since(generation after, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_mu_);
  state_cv_.wait_for(lock, timeout, [&] { return current_->gen() > after || waiters_stopped_; });
  changes_since_result out;
  out.gen = current_->gen();
  if (after < feed_start_) {
    out.lost = true;
    return out;
  }
  auto it = std::upper_bound(feed_.begin(), feed_.end(), after, [](generation g, const change& c) { return g < c.gen; });
  out.changes.assign(it, feed_.end());
  return out;
}

void database::stop_waiters() {
  {
    std::lock_guard lock(state_mu_);
    waiters_stopped_ = true;
  }
  state_cv_.notify_all();
}

// ------------------------------------------------------------------ replication

result<std::shared_ptr<state>, std::string> read_checkpoint(
    std::string_view bytes, const std::function<void(std::size_t, const std::string&, std::string_view)>& each_row,
    keyed_outcomes* keyed, std::map<std::string, std::string, std::less<>>* private_values) {
  wire::limits lim;
  lim.max_body_bytes = std::size_t{1} << 40;
  auto v = wire::binary::decode(bytes, lim);
  if (!v) return fail("corrupt checkpoint: " + v.error().message);
  const wire::array* top = v->as_array();
  // [generation, rows], then (when kept) the idempotency keys (or nil) and the private values.
  if (!top || top->size() < 2 || top->size() > 4 || !(*top)[0].as_int() || !(*top)[1].as_array())
    return fail(std::string("corrupt checkpoint: wrong shape"));
  if (keyed) {
    keyed->clear();
    if (top->size() >= 3 && (*top)[2].as_array())
      if (auto r = keyed->from_value((*top)[2]); !r) return fail("corrupt checkpoint: " + r.error());
  }
  if (private_values) {
    private_values->clear();
    if (top->size() == 4) {
      const wire::structure* values = (*top)[3].as_struct();
      if (!values) return fail(std::string("corrupt checkpoint: private values of the wrong shape"));
      for (const auto& [name, value] : *values) {
        if (!value.as_string() || name.empty() || name.size() > database::max_private_name_bytes ||
            value.as_string()->size() > database::max_private_value_bytes)
          return fail(std::string("corrupt checkpoint: a private value of the wrong shape"));
        private_values->insert_or_assign(name, *value.as_string());
      }
    }
  }
  const auto& sch = schema::get();
  auto out = std::make_shared<state>();
  for (const auto& item : *(*top)[1].as_array()) {
    const wire::array* a = item.as_array();
    if (!a || a->size() != 3 || !(*a)[0].as_int() || !(*a)[1].as_string() || !(*a)[2].as_string())
      return fail(std::string("corrupt checkpoint row"));
    auto cls = static_cast<std::size_t>(*(*a)[0].as_int());
    if (cls >= sch.tables().size()) return fail(std::string("checkpoint row of an unknown class"));
    auto r = decode_row(sch.table(cls), *(*a)[2].as_string());
    if (!r) return fail("corrupt checkpoint row: " + r.error());
    if (each_row) each_row(cls, *(*a)[1].as_string(), *(*a)[2].as_string());
    out->load_row(cls, *(*a)[1].as_string(), std::move(r).value());
  }
  out->derive_after_load();
  out->set_generation(static_cast<generation>(*(*top)[0].as_int()));
  return out;
}

std::string database::export_checkpoint() const {
  std::shared_ptr<const state> snap;
  wire::value keys;
  wire::structure privates;  // in name order: the same bytes on every member
  {
    std::lock_guard lock(keyed_mu_);
    snap = snapshot();
    if (keyed_->size() > 0) keys = keyed_->to_value();
    for (const auto& [name, value] : private_) privates.emplace_back(name, wire::value(value));
  }
  const auto& sch = schema::get();
  wire::array rows;
  for (std::size_t c = 0; c < sch.tables().size(); ++c) {
    // In the order of refs: tables iterate in the order of a hash keyed per process, and two
    // members holding the same state must write the same bytes.
    std::vector<std::pair<std::string, const row*>> sorted;
    snap->for_each(c, [&](const std::string& ref, const row& r) {
      sorted.emplace_back(ref, &r);
      return true;
    }, true);
    std::sort(sorted.begin(), sorted.end());
    for (const auto& [ref, r] : sorted)
      rows.emplace_back(wire::array{wire::value(static_cast<std::int64_t>(c)), wire::value(ref),
                                    wire::value(encode_row(sch.table(c), *r))});
  }
  wire::array top{wire::value(static_cast<std::int64_t>(snap->gen())), wire::value(std::move(rows))};
  if (keys.as_array() || !privates.empty()) top.push_back(std::move(keys));
  if (!privates.empty()) top.push_back(wire::value(std::move(privates)));
  return wire::binary::encode(wire::value(std::move(top)));
}

result<std::vector<std::string>, std::string> database::export_entries_after(generation g) const {
  generation last = current_generation();
  std::vector<std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  generation expect = g + 1;
  for (it->Seek(log_key(expect)); it->Valid() && it->key().starts_with("l") && expect <= last; it->Next(), ++expect) {
    if (it->key().ToString() != log_key(expect)) return fail("log entry " + std::to_string(expect) + " is no longer kept");
    out.push_back(it->value().ToString());
  }
  if (expect <= last) return fail("log entry " + std::to_string(expect) + " is no longer kept");
  return out;
}

result<void, std::string> database::import_checkpoint(std::string_view bytes) {
  auto p = std::make_shared<proposal>();
  p->k = proposal::kind::install;
  p->checkpoint = std::string(bytes);
  return submit_and_wait(std::move(p));
}

// Replaces the whole state with a checkpoint: a new replica's first state, or a lagging one's
// when the entries it misses are no longer kept. Rows and log entries of the old state go in the
// same synced write that stores the new ones; event waiters are told they lost track.
void database::apply_install(proposal& p) {
  auto install = [&]() -> result<void, std::string> {
    rocksdb::WriteBatch wb;
    wb.DeleteRange("r", "s");
    wb.DeleteRange("l", "m");
    wb.DeleteRange("k", "l");
    wb.DeleteRange("p", "q");
    auto keyed = std::make_unique<keyed_outcomes>(options_.keyed_outcomes_kept);
    std::map<std::string, std::string, std::less<>> privates;
    auto read = read_checkpoint(p.checkpoint, [&](std::size_t cls, const std::string& ref, std::string_view encoded) {
      wb.Put(row_key(cls, ref), rocksdb::Slice(encoded.data(), encoded.size()));
    }, keyed.get(), &privates);
    if (read) keyed->for_each_stored([&](std::uint64_t place, const std::string& stored) { wb.Put(keyed_key(place), stored); });
    for (const auto& [name, value] : privates) wb.Put("p" + name, value);
    if (!read) return fail(read.error());
    auto next = std::move(read).value();
    const generation gen = next->gen();
    if (gen < current_generation())
      return fail("the checkpoint (generation " + std::to_string(gen) + ") is older than this database (" +
                  std::to_string(current_generation()) + ")");
    wb.Put(key_gen, std::to_string(gen));
    if (p.log_index) wb.Put(key_log_index, std::to_string(p.log_index));
    rocksdb::WriteOptions wo;
    wo.sync = true;
    if (auto s = db_->Write(wo, &wb); !s.ok()) return fail("cannot store the checkpoint: " + status_text(s));
    if (p.log_index) applied_log_index_ = p.log_index;
    index_tombstones(*next);
    {
      std::lock_guard lock(state_mu_);
      feed_start_ = gen;
      feed_.clear();
    }
    std::lock_guard lock(keyed_mu_);
    keyed_ = std::move(keyed);
    private_ = std::move(privates);
    publish(std::move(next), {});
    return ok_v;
  };
  auto r = install();
  p.outcome = r ? result<generation, api::api_error>(current_generation())
                : fail(api::errors::INTERNAL_ERROR(r.error()));
}

result<void, std::string> database::apply_entry(std::string_view bytes) {
  auto e = decode_log_entry(bytes);
  if (!e) return fail(e.error().message);
  auto p = std::make_shared<proposal>();
  p->k = proposal::kind::entry;
  p->ops = std::move(e->ops);
  p->fixed_gen = e->gen;
  p->time_ms = e->time_ms;
  return submit_and_wait(std::move(p));
}

std::optional<std::string> database::private_value(std::string_view name) const {
  std::lock_guard lock(keyed_mu_);
  auto it = private_.find(name);
  if (it == private_.end()) return std::nullopt;
  return it->second;
}

void database::index_tombstones(const state& s) {
  tombstones_.clear();
  for (std::size_t c = 0; c < schema::get().tables().size(); ++c)
    s.for_each(c, [&](const std::string& ref, const row& r) {
      if (r.deleted) tombstones_.push_back({r.deleted, c, ref});
      return true;
    }, true);
  std::sort(tombstones_.begin(), tombstones_.end(), [](const tombstone& a, const tombstone& b) { return a.deleted < b.deleted; });
}

result<void, std::string> database::collect_tombstones(generation up_to) {
  auto p = std::make_shared<proposal>();
  p->k = proposal::kind::collect;
  p->collect_up_to = up_to;
  return submit_and_wait(std::move(p));
}

result<void, std::string> database::submit_and_wait(std::shared_ptr<proposal> p) {
  auto r = order_and_wait(std::move(p));
  if (!r) return fail(r.error().description().at(0) + (r.error().params.empty() ? "" : ": " + r.error().params[0]));
  return ok_v;
}

}  // namespace xapid::storage
