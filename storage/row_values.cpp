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

class all_records final : public wire::deferred {
 public:
  all_records(std::shared_ptr<const state> snap, std::size_t cls, row_view view)
      : snap_(std::move(snap)), ts_(schema::get().table(cls)), view_(std::move(view)) {}
  void emit(wire::emitter& out) const override {
    out.begin_struct();
    snap_->for_each(ts_.index, [&](const std::string& ref, const row& r) {
      out.name(ref);
      ts_.ops->emit(view_ ? view_(r.record).get() : r.record.get(), out);
      return true;
    });
    out.end_struct();
  }
  std::size_t size_hint() const override {
    return 32 + snap_->count(ts_.index) * (80 + ts_.desc->fields.size() * bytes_per_field);
  }

 private:
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
