// The writers' speed per byte on what large answers are made of: a 10,000-VM get_all_records
// answer written from typed records (as storage's all_records_value writes it), in XML-RPC and
// JSON-RPC, in pieces as the daemon sends it. The VMs are those tests/bench/large_answers_bench.py
// makes (VM.create of a small record). Goal: JSON as fast per byte as XML.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "proto/wire/jsonrpc.hpp"
#include "proto/wire/xmlrpc.hpp"
#include "xapid/api/types.hpp"

namespace xapid {
namespace {

std::string uuid_for(int i, int salt) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-8%03x-%012x", 0x5f6e0000 + i, salt & 0xffff, i & 0xfff,
                (i * 7) & 0xfff, 0x1234560 + i * 13 + salt);
  return buf;
}

struct row {
  std::string ref;
  api::vm vm;
};

std::vector<row> vms(int n) {
  std::vector<row> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    out[static_cast<std::size_t>(i)].ref = "OpaqueRef:" + uuid_for(i, 2);
    api::vm& vm = out[static_cast<std::size_t>(i)].vm;
    vm.uuid = uuid_for(i, 0);
    vm.name_label = "vm-" + std::to_string(i);
    vm.memory_static_max = vm.memory_dynamic_max = vm.memory_dynamic_min = vm.memory_static_min = 1 << 30;
    vm.VCPUs_max = vm.VCPUs_at_startup = 1;
    vm.actions_after_crash = api::on_crash_behaviour::restart;
    vm.other_config = {{"scale_bench", "true"}};
    vm.domid = -1;
    vm.metrics.opaque = "OpaqueRef:" + uuid_for(i, 1);
  }
  return out;
}

// The table as get_all_records answers it: a struct from ref to record, a row per step.
class vm_table final : public wire::deferred {
 public:
  explicit vm_table(const std::vector<row>& rows) : rows_(rows) {}
  void emit(wire::emitter& out) const override {
    auto c = cursor();
    while (c->emit_next(out)) {
    }
  }
  std::size_t size_hint() const override { return rows_.size() * 6000; }
  std::unique_ptr<wire::deferred_cursor> cursor() const override { return std::make_unique<rows_cursor>(*this); }

 private:
  class rows_cursor final : public wire::deferred_cursor {
   public:
    explicit rows_cursor(const vm_table& t) : t_(t) {}
    bool emit_next(wire::emitter& out) override {
      if (at_ == -1) {
        out.begin_struct();
      } else if (at_ < static_cast<long>(t_.rows_.size())) {
        const row& r = t_.rows_[static_cast<std::size_t>(at_)];
        out.name(r.ref);
        api::emit(r.vm, out);
      } else if (at_ == static_cast<long>(t_.rows_.size())) {
        out.end_struct();
      } else {
        return false;
      }
      ++at_;
      return true;
    }

   private:
    const vm_table& t_;
    long at_ = -1;
  };

  const std::vector<row>& rows_;
};

const std::vector<row>& ten_thousand() {
  static const std::vector<row> rows = vms(10000);
  return rows;
}

template <class Pieces>
void write_in_pieces(benchmark::State& state, Pieces make) {
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto pieces = make();
    bytes = 0;
    for (std::string p = pieces->next({}); !p.empty(); p = pieces->next(std::move(p))) bytes += p.size();
    benchmark::DoNotOptimize(bytes);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes * state.iterations()));
  state.counters["MB"] = static_cast<double>(bytes) / 1e6;
}

void BM_vm_all_records_10000_xml(benchmark::State& state) {
  const wire::value table(std::make_shared<const vm_table>(ten_thousand()));
  write_in_pieces(state, [&] { return wire::xmlrpc::write_response_in_pieces(wire::response{true, table, {}}); });
}

void BM_vm_all_records_10000_json(benchmark::State& state) {
  const wire::value table(std::make_shared<const vm_table>(ten_thousand()));
  const wire::jsonrpc::request req{{}, wire::jsonrpc::version::v2_0, "1"};
  write_in_pieces(state, [&] { return wire::jsonrpc::write_response_in_pieces(req, wire::response{true, table, {}}); });
}

BENCHMARK(BM_vm_all_records_10000_xml)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_vm_all_records_10000_json)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace xapid

BENCHMARK_MAIN();
