#include "storage/row_values.hpp"

#include "proto/wire/emitter.hpp"

namespace xapid::storage {
namespace {

// About what a field takes in XML-RPC (<member><name>…</name><value>…</value></member>).
constexpr std::size_t bytes_per_field = 96;

class one_record final : public wire::deferred {
 public:
  one_record(const table_schema& ts, std::shared_ptr<const void> record) : ts_(ts), record_(std::move(record)) {}
  void emit(wire::emitter& out) const override { ts_.ops->emit(record_.get(), out); }
  std::size_t size_hint() const override { return 32 + ts_.desc->fields.size() * bytes_per_field; }

 private:
  const table_schema& ts_;
  std::shared_ptr<const void> record_;
};

// The table as a struct from ref to record, a row per step when written in pieces. The whole
// walk uses the snapshot's for_each, faster through a large table than the iterator.
class all_records final : public wire::deferred {
 public:
  all_records(std::shared_ptr<const state> snap, std::size_t cls, row_view view)
      : snap_(std::move(snap)), ts_(schema::get().table(cls)), view_(std::move(view)) {}
  void emit(wire::emitter& out) const override {
    out.begin_struct();
    snap_->for_each(ts_.index, [&](const std::string& ref, const row& r) {
      emit_row(out, ref, r);
      return true;
    });
    out.end_struct();
  }
  std::size_t size_hint() const override {
    return 32 + snap_->count(ts_.index) * (80 + ts_.desc->fields.size() * bytes_per_field);
  }
  std::unique_ptr<wire::deferred_cursor> cursor() const override { return std::make_unique<rows_cursor>(*this); }

 private:
  void emit_row(wire::emitter& out, const std::string& ref, const row& r) const {
    out.name(ref);
    ts_.ops->emit(view_ ? view_(r.record).get() : r.record.get(), out);
  }

  // Rows are scattered in memory, each a few cache misses away (its ref's text, the row, its
  // record), which a 10,000-row answer paid one after another: the rows a few steps on are asked
  // into the cache while this one is written — the row and its ref `rows_ahead` on, the record
  // (its address is in the row fetched before) half as far.
  static constexpr int rows_ahead = 8;

  class rows_cursor final : public wire::deferred_cursor {
   public:
    explicit rows_cursor(const all_records& of)
        : of_(of), at_(of.snap_->rows(of.ts_.index).begin()), end_(of.snap_->rows(of.ts_.index).end()),
          near_(at_), far_(at_) {
      for (int i = 0; i < rows_ahead && far_ != end_; ++i) fetch_ahead();
    }
    bool emit_next(wire::emitter& out) override {
      if (!opened_) {
        out.begin_struct();
        opened_ = true;
        return true;
      }
      while (at_ != end_ && at_->value->deleted) ++at_;
      if (at_ == end_) {
        if (closed_) return false;
        out.end_struct();
        closed_ = true;
        return true;
      }
      of_.emit_row(out, at_->key, *at_->value);
      ++at_;
      if (far_ != end_) fetch_ahead();
      return true;
    }

   private:
    void fetch_ahead() {
      __builtin_prefetch(far_->key.data());
      __builtin_prefetch(far_->value.get());
      ++far_;
      if (++fetched_ <= rows_ahead / 2) return;
      const char* record = static_cast<const char*>(near_->value->record.get());
      for (int line = 0; line < 4; ++line) __builtin_prefetch(record + 64 * line);
      ++near_;
    }

    const all_records& of_;  // and its snapshot, which hold the rows walked
    persistent_map<row_ptr>::iterator at_, end_;
    persistent_map<row_ptr>::iterator near_, far_;  // the next rows whose record, and whose row, to fetch
    int fetched_ = 0;
    bool opened_ = false, closed_ = false;
  };

  std::shared_ptr<const state> snap_;
  const table_schema& ts_;
  row_view view_;
};

}  // namespace

wire::value record_value(const table_schema& ts, std::shared_ptr<const void> record) {
  return wire::value(std::make_shared<const one_record>(ts, std::move(record)));
}

wire::value all_records_value(std::shared_ptr<const state> snap, std::size_t cls, row_view view) {
  return wire::value(std::make_shared<const all_records>(std::move(snap), cls, std::move(view)));
}

}  // namespace xapid::storage
