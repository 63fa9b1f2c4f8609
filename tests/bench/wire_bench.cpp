// Throughput of the wire codecs on XenAPI-shaped traffic: a VM.get_record call and answer, and a
// 1,000-VM VM.get_all_records answer, in both formats. Beside each parse, the same bytes parsed
// by the bare library (pugixml DOM, RapidJSON Document) as the ceiling we build on.
#include <benchmark/benchmark.h>
#include <pugixml.hpp>
#include <rapidjson/document.h>

#include <cstdint>
#include <string>

#include "proto/wire/jsonrpc.hpp"
#include "proto/wire/xmlrpc.hpp"

namespace xapid::wire {
namespace {

std::string uuid_for(int i, int salt = 0) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-8%03x-%012x", 0x5f6e0000 + i, salt & 0xffff,
                i & 0xfff, (i * 7) & 0xfff, 0x1234560 + i * 13 + salt);
  return buf;
}
std::string ref_for(int i, int salt = 0) { return "OpaqueRef:" + uuid_for(i, salt); }

array refs(int i, int n, int salt) {
  array a;
  for (int k = 0; k < n; ++k) a.push_back(ref_for(i, salt + k));
  return a;
}

// A VM record as xapi returns it: ~95 fields, most of them short strings, refs, ints (which
// XML-RPC carries as strings), and a handful of small maps.
value vm_record(int i) {
  std::int64_t gib = std::int64_t{1} << 30;
  return structure{
      {"uuid", uuid_for(i)},
      {"allowed_operations", array{"changing_dynamic_range", "changing_memory_limits", "pause",
                                   "clean_reboot", "clean_shutdown", "hard_reboot", "suspend",
                                   "hard_shutdown", "snapshot", "checkpoint", "migrate_send"}},
      {"current_operations", structure{}},
      {"name_label", "vm-" + std::to_string(i) + " (web tier)"},
      {"name_description", "Created by the capacity planner on 2024-01-31 for tenant acme"},
      {"power_state", "Running"},
      {"user_version", std::int64_t{1}},
      {"is_a_template", false},
      {"is_default_template", false},
      {"suspend_VDI", "OpaqueRef:NULL"},
      {"resident_on", ref_for(i % 16, 1)},
      {"scheduled_to_be_resident_on", "OpaqueRef:NULL"},
      {"affinity", ref_for(i % 16, 1)},
      {"memory_overhead", std::int64_t{36700160}},
      {"memory_target", 4 * gib},
      {"memory_static_max", 4 * gib},
      {"memory_dynamic_max", 4 * gib},
      {"memory_dynamic_min", 2 * gib},
      {"memory_static_min", 1 * gib},
      {"VCPUs_params", structure{{"weight", "256"}, {"cap", "0"}, {"mask", "0,1,2,3"}}},
      {"VCPUs_max", std::int64_t{4}},
      {"VCPUs_at_startup", std::int64_t{2}},
      {"actions_after_softreboot", "soft_reboot"},
      {"actions_after_shutdown", "destroy"},
      {"actions_after_reboot", "restart"},
      {"actions_after_crash", "restart"},
      {"consoles", refs(i, 1, 10)},
      {"VIFs", refs(i, 2, 20)},
      {"VBDs", refs(i, 3, 30)},
      {"VUSBs", array{}},
      {"crash_dumps", array{}},
      {"VTPMs", array{}},
      {"PV_bootloader", ""},
      {"PV_kernel", ""},
      {"PV_ramdisk", ""},
      {"PV_args", ""},
      {"PV_bootloader_args", ""},
      {"PV_legacy_args", ""},
      {"HVM_boot_policy", "BIOS order"},
      {"HVM_boot_params", structure{{"order", "cdn"}, {"firmware", "uefi"}}},
      {"HVM_shadow_multiplier", 1.0},
      {"platform", structure{{"timeoffset", "0"}, {"device-model", "qemu-upstream-uefi"},
                             {"videoram", "8"}, {"hpet", "true"}, {"secureboot", "false"},
                             {"apic", "true"}, {"pae", "true"}, {"vga", "std"},
                             {"nx", "true"}, {"viridian", "true"}, {"acpi", "1"},
                             {"cores-per-socket", "2"}}},
      {"PCI_bus", ""},
      {"other_config", structure{{"base_template_name", "Ubuntu Jammy Jellyfish 22.04"},
                                 {"import_task", "OpaqueRef:NULL"},
                                 {"install-methods", "cdrom,nfs,http,ftp"},
                                 {"linux_template", "true"},
                                 {"mac_seed", uuid_for(i, 99)},
                                 {"owner", "team-web <web@example.com>"}}},
      {"domid", std::int64_t{i + 1}},
      {"domarch", "x64"},
      {"last_boot_CPU_flags", structure{{"vendor", "GenuineIntel"},
                                        {"features", "1fcbfbff-f7fa3223-2d93fbff-00000121"}}},
      {"is_control_domain", false},
      {"metrics", ref_for(i, 40)},
      {"guest_metrics", ref_for(i, 41)},
      {"last_booted_record", ""},
      {"recommendations",
       "<restrictions><restriction field=\"memory-static-max\" max=\"137438953472\"/>"
       "<restriction field=\"vcpus-max\" max=\"32\"/></restrictions>"},
      {"xenstore_data", structure{{"vm-data", ""}, {"vm-data/mmio-hole-size", "268435456"}}},
      {"ha_always_run", false},
      {"ha_restart_priority", "best-effort"},
      {"is_a_snapshot", false},
      {"snapshot_of", "OpaqueRef:NULL"},
      {"snapshots", refs(i, 2, 50)},
      {"snapshot_time", datetime{"19700101T00:00:00Z"}},
      {"transportable_snapshot_id", ""},
      {"blobs", structure{}},
      {"tags", array{"web", "production", "tier-1"}},
      {"blocked_operations", structure{{"destroy", "protected by policy"}}},
      {"snapshot_info", structure{}},
      {"snapshot_metadata", ""},
      {"parent", "OpaqueRef:NULL"},
      {"children", array{}},
      {"bios_strings", structure{{"bios-vendor", "Xen"}, {"bios-version", ""},
                                 {"system-manufacturer", "Xen"},
                                 {"system-product-name", "HVM domU"},
                                 {"system-serial-number", uuid_for(i, 7)}}},
      {"protection_policy", "OpaqueRef:NULL"},
      {"is_snapshot_from_vmpp", false},
      {"snapshot_schedule", "OpaqueRef:NULL"},
      {"is_vmss_snapshot", false},
      {"appliance", "OpaqueRef:NULL"},
      {"start_delay", std::int64_t{0}},
      {"shutdown_delay", std::int64_t{0}},
      {"order", std::int64_t{0}},
      {"VGPUs", array{}},
      {"attached_PCIs", array{}},
      {"suspend_SR", "OpaqueRef:NULL"},
      {"version", std::int64_t{0}},
      {"generation_id", "0:0"},
      {"hardware_platform_version", std::int64_t{2}},
      {"has_vendor_device", false},
      {"requires_reboot", false},
      {"reference_label", "ubuntu-22.04"},
      {"domain_type", "hvm"},
      {"NVRAM", structure{{"EFI-variables", std::string(256, 'A')}}},
      {"pending_guidances", array{}},
      {"pending_guidances_recommended", array{}},
      {"pending_guidances_full", array{}},
  };
}

value all_records(int n) {
  structure s;
  s.reserve(n);
  for (int i = 0; i < n; ++i) s.emplace_back(ref_for(i), vm_record(i));
  return s;
}

const call& get_record_call() {
  static const call c{"VM.get_record", {ref_for(0, 500), ref_for(0)}};
  return c;
}
const response& get_record_response() {
  static const response r{true, vm_record(0), {}};
  return r;
}
const response& all_records_response() {
  static const response r{true, all_records(1000), {}};
  return r;
}

void report(benchmark::State& state, std::size_t bytes) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["body_bytes"] = static_cast<double>(bytes);
}

// --- XML-RPC ------------------------------------------------------------------------------

const std::string& xml_request() {
  static const std::string s = xmlrpc::write_call(get_record_call());
  return s;
}
const std::string& xml_record() {
  static const std::string s = xmlrpc::write_response(get_record_response());
  return s;
}
const std::string& xml_all() {
  static const std::string s = xmlrpc::write_response(all_records_response());
  return s;
}

void parse_xml_call(benchmark::State& state, const std::string& body) {
  for (auto _ : state) {
    auto c = xmlrpc::parse_call(body);
    if (!c.ok()) state.SkipWithError(c.error().message.c_str());
    benchmark::DoNotOptimize(c);
  }
  report(state, body.size());
}
void parse_xml_response(benchmark::State& state, const std::string& body) {
  for (auto _ : state) {
    auto r = xmlrpc::parse_response(body);
    if (!r.ok()) state.SkipWithError(r.error().message.c_str());
    benchmark::DoNotOptimize(r);
  }
  report(state, body.size());
}
void write_xml_response(benchmark::State& state, const response& r) {
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string out = xmlrpc::write_response(r);
    bytes = out.size();
    benchmark::DoNotOptimize(out);
  }
  report(state, bytes);
}
void raw_pugixml(benchmark::State& state, const std::string& body) {
  for (auto _ : state) {
    pugi::xml_document doc;
    auto ok = doc.load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8);
    if (!ok) state.SkipWithError(ok.description());
    benchmark::DoNotOptimize(doc);
  }
  report(state, body.size());
}

void BM_xml_get_record_request_parse(benchmark::State& s) { parse_xml_call(s, xml_request()); }
void BM_xml_get_record_request_raw_pugixml(benchmark::State& s) { raw_pugixml(s, xml_request()); }
void BM_xml_get_record_response_write(benchmark::State& s) {
  write_xml_response(s, get_record_response());
}
void BM_xml_get_record_response_parse(benchmark::State& s) { parse_xml_response(s, xml_record()); }
void BM_xml_get_record_response_raw_pugixml(benchmark::State& s) { raw_pugixml(s, xml_record()); }
void BM_xml_get_record_response_write_parse(benchmark::State& state) {
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string out = xmlrpc::write_response(get_record_response());
    auto r = xmlrpc::parse_response(out);
    bytes = out.size();
    benchmark::DoNotOptimize(r);
  }
  report(state, bytes);
}
void BM_xml_all_records_1000_write(benchmark::State& s) {
  write_xml_response(s, all_records_response());
}
void BM_xml_all_records_1000_parse(benchmark::State& s) { parse_xml_response(s, xml_all()); }
void BM_xml_all_records_1000_raw_pugixml(benchmark::State& s) { raw_pugixml(s, xml_all()); }

BENCHMARK(BM_xml_get_record_request_parse);
BENCHMARK(BM_xml_get_record_request_raw_pugixml);
BENCHMARK(BM_xml_get_record_response_write);
BENCHMARK(BM_xml_get_record_response_parse);
BENCHMARK(BM_xml_get_record_response_raw_pugixml);
BENCHMARK(BM_xml_get_record_response_write_parse);
BENCHMARK(BM_xml_all_records_1000_write)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_xml_all_records_1000_parse)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_xml_all_records_1000_raw_pugixml)->Unit(benchmark::kMillisecond);

// --- JSON-RPC -----------------------------------------------------------------------------

const jsonrpc::request& json_req() {
  static const jsonrpc::request r{get_record_call(), jsonrpc::version::v2_0, "17"};
  return r;
}
const std::string& json_request() {
  static const std::string s = jsonrpc::write_request(json_req());
  return s;
}
const std::string& json_record() {
  static const std::string s = jsonrpc::write_response(json_req(), get_record_response());
  return s;
}
const std::string& json_all() {
  static const std::string s = jsonrpc::write_response(json_req(), all_records_response());
  return s;
}

void parse_json_response(benchmark::State& state, const std::string& body) {
  for (auto _ : state) {
    auto r = jsonrpc::parse_response(body);
    if (!r.ok()) state.SkipWithError(r.error().message.c_str());
    benchmark::DoNotOptimize(r);
  }
  report(state, body.size());
}
void write_json_response(benchmark::State& state, const response& r) {
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string out = jsonrpc::write_response(json_req(), r);
    bytes = out.size();
    benchmark::DoNotOptimize(out);
  }
  report(state, bytes);
}
void raw_rapidjson(benchmark::State& state, const std::string& body) {
  for (auto _ : state) {
    rapidjson::Document doc;
    doc.Parse(body.data(), body.size());
    if (doc.HasParseError()) state.SkipWithError("RapidJSON parse error");
    benchmark::DoNotOptimize(doc);
  }
  report(state, body.size());
}

void BM_json_get_record_request_parse(benchmark::State& state) {
  for (auto _ : state) {
    auto r = jsonrpc::parse_request(json_request());
    if (!r.ok()) state.SkipWithError(r.error().message.c_str());
    benchmark::DoNotOptimize(r);
  }
  report(state, json_request().size());
}
void BM_json_get_record_request_raw_rapidjson(benchmark::State& s) { raw_rapidjson(s, json_request()); }
void BM_json_get_record_response_write(benchmark::State& s) {
  write_json_response(s, get_record_response());
}
void BM_json_get_record_response_parse(benchmark::State& s) { parse_json_response(s, json_record()); }
void BM_json_get_record_response_raw_rapidjson(benchmark::State& s) { raw_rapidjson(s, json_record()); }
void BM_json_get_record_response_write_parse(benchmark::State& state) {
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string out = jsonrpc::write_response(json_req(), get_record_response());
    auto r = jsonrpc::parse_response(out);
    bytes = out.size();
    benchmark::DoNotOptimize(r);
  }
  report(state, bytes);
}
void BM_json_all_records_1000_write(benchmark::State& s) {
  write_json_response(s, all_records_response());
}
void BM_json_all_records_1000_parse(benchmark::State& s) { parse_json_response(s, json_all()); }
void BM_json_all_records_1000_raw_rapidjson(benchmark::State& s) { raw_rapidjson(s, json_all()); }

BENCHMARK(BM_json_get_record_request_parse);
BENCHMARK(BM_json_get_record_request_raw_rapidjson);
BENCHMARK(BM_json_get_record_response_write);
BENCHMARK(BM_json_get_record_response_parse);
BENCHMARK(BM_json_get_record_response_raw_rapidjson);
BENCHMARK(BM_json_get_record_response_write_parse);
BENCHMARK(BM_json_all_records_1000_write)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_json_all_records_1000_parse)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_json_all_records_1000_raw_rapidjson)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace xapid::wire

BENCHMARK_MAIN();
