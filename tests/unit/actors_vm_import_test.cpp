// VM import below the HTTP layer: an archive's parsed metadata and received disks become the
// records a client sees (VM, VBDs, VDIs with their images, VIFs) in one commit, or nothing at
// all — no record, no image, no staging file.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <stdexcept>

#include "actors/first_boot.hpp"
#include "actors/vm_import.hpp"
#include "sm/qemu_img.hpp"
#include "tests/support/api_error_matchers.hpp"
#include "tests/support/qemu_io.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::actors {
namespace {

using storage::schema;
using testing::reads_pattern;
constexpr std::int64_t mib = std::int64_t{1} << 20;
namespace fs = std::filesystem;

wire::value text(const std::string& s) { return wire::value(s); }
wire::value number(std::int64_t n) { return wire::value(n); }

struct import_test : ::testing::Test {
  testing::temp_dir dir;
  real_clock clk;
  std::unique_ptr<storage::database> db;
  std::unique_ptr<host_actors> actors;
  std::unique_ptr<storage_repos> repos;
  std::unique_ptr<vm_import> importer;
  std::string host, local_sr, sr_dir;

  void SetUp() override {
    db = std::move(storage::database::open({dir / "db"})).value();
    xen::host_info hw{4, "v", "m", 2000, std::int64_t{8} << 30, std::int64_t{7} << 30, "4.17"};
    auto id = actors::ensure_pool_and_host(*db, dir.path(), "127.0.0.1", hw);
    ASSERT_TRUE(id.ok());
    host = id->host;
    local_sr = db->snapshot()->first<api::pool>()->default_SR.opaque;
    actors = std::make_unique<host_actors>(*db);
    repos = std::make_unique<storage_repos>(*db, *actors, clk, host, dir.path());
    ASSERT_TRUE(repos->start().ok());
    importer = std::make_unique<vm_import>(*db, *repos, *actors, clk);
    sr_dir = *repos->directory(*db->snapshot(), local_sr);
  }

  // What another host exported: a VM "web" with a root disk of 8 MiB (userdevice 0), a data
  // disk of 4 MiB (userdevice 1) and a NIC on the management bridge, as its ova.xml lists them.
  static xenserver_metadata web_vm() {
    auto object = [](std::string cls, std::string id, wire::structure record) {
      return xva_object{std::move(cls), std::move(id), wire::value(std::move(record))};
    };
    xenserver_metadata m;
    m.objects = {
        object("VM", "Ref:0",
               {{"uuid", text("6a1c3f0e-1d2b-4c5d-8e9f-0a1b2c3d4e5f")},
                {"name_label", text("web")},
                {"power_state", text("Halted")},
                {"memory_static_min", number(256 * mib)},
                {"memory_dynamic_min", number(256 * mib)},
                {"memory_dynamic_max", number(512 * mib)},
                {"memory_static_max", number(512 * mib)},
                {"VCPUs_max", number(2)},
                {"VCPUs_at_startup", number(2)},
                {"VBDs", wire::value(wire::array{text("Ref:1"), text("Ref:2")})},
                {"VIFs", wire::value(wire::array{text("Ref:5")})}}),
        object("VBD", "Ref:1",
               {{"VM", text("Ref:0")}, {"VDI", text("Ref:3")}, {"userdevice", text("0")},
                {"bootable", wire::value(true)}, {"mode", text("RW")}, {"type", text("Disk")}}),
        object("VBD", "Ref:2",
               {{"VM", text("Ref:0")}, {"VDI", text("Ref:4")}, {"userdevice", text("1")},
                {"mode", text("RW")}, {"type", text("Disk")}}),
        object("VDI", "Ref:3",
               {{"name_label", text("root")}, {"virtual_size", number(8 * mib)}, {"SR", text("Ref:7")},
                {"uuid", text("0f1e2d3c-4b5a-4968-8776-655443322110")}}),
        object("VDI", "Ref:4",
               {{"name_label", text("data")}, {"virtual_size", number(4 * mib)}, {"SR", text("Ref:7")},
                {"uuid", text("1f1e2d3c-4b5a-4968-8776-655443322110")}}),
        object("VIF", "Ref:5",
               {{"VM", text("Ref:0")}, {"network", text("Ref:6")}, {"device", text("0")},
                {"MAC", text("aa:00:00:00:00:01")}}),
        object("network", "Ref:6", {{"name_label", text("the exporter's network")}, {"bridge", text("xenbr0")}}),
        object("SR", "Ref:7", {{"name_label", text("the exporter's SR")}}),
    };
    return m;
  }

  static wire::structure& record_of(xenserver_metadata& m, const std::string& id) {
    for (auto& o : m.objects)
      if (o.id == id) return *o.snapshot.as_struct();
    throw std::logic_error("no object " + id);
  }
  static void set_field(wire::structure& record, const std::string& field, wire::value v) {
    for (auto& [k, old] : record)
      if (k == field) return void(old = std::move(v));
    record.emplace_back(field, std::move(v));
  }

  std::set<std::string> files_of_sr() const {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(sr_dir)) out.insert(e.path().filename().string());
    return out;
  }
  std::size_t count(std::size_t cls) const { return db->snapshot()->count(cls); }
  std::string network_on(const std::string& bridge) const {
    std::string found;
    db->snapshot()->for_each(schema::get().class_of<api::network>(), [&](const std::string& ref, const storage::row& r) {
      if (static_cast<const api::network*>(r.record.get())->bridge == bridge) found = ref;
      return found.empty();
    });
    return found;
  }
};

TEST_F(import_test, a_vm_with_two_disks_and_a_nic_becomes_its_records_in_one_commit) {
  auto plan = importer->plan(web_vm(), local_sr, {});
  ASSERT_TRUE(plan.ok()) << plan.error().description().back();
  ASSERT_EQ(plan->disks().size(), 2u);
  import_disk* root = plan->disk_under("Ref:3");
  import_disk* data = plan->disk_under("Ref:4");
  ASSERT_TRUE(root && data);
  EXPECT_EQ(root->size, 8 * mib);
  EXPECT_EQ(plan->disk_under("Ref:5"), nullptr);  // a NIC brings no chunks
  ASSERT_TRUE(root->data.write_chunk(0, std::string(mib, '\x61')));
  ASSERT_TRUE(data->data.write_chunk(1, std::string(mib, '\x62')));

  const std::string management = network_on("xenbr0");
  ASSERT_FALSE(management.empty());
  const std::size_t networks = count(schema::get().class_of<api::network>());
  auto vm = importer->commit(*plan);
  ASSERT_TRUE(vm.ok()) << vm.error().description().back();

  auto s = db->snapshot();
  const api::vm* v = s->get<api::vm>(*vm);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->name_label, "web");
  EXPECT_NE(v->uuid, "6a1c3f0e-1d2b-4c5d-8e9f-0a1b2c3d4e5f");  // new uuids always
  EXPECT_EQ(v->power_state, api::vm_power_state::Halted);
  EXPECT_EQ(v->VCPUs_max, 2);
  EXPECT_EQ(v->memory_static_max, 512 * mib);
  ASSERT_TRUE(s->get<api::vm_metrics>(v->metrics.opaque));

  const storage::generation made_at = s->find(schema::get().class_of<api::vm>(), *vm)->created;
  std::map<std::string, std::pair<std::int64_t, std::string>> disks;  // userdevice -> size, image
  for (const auto& b : s->refs_where<api::vbd>("VM", *vm)) {
    const api::vbd* vbd = s->get<api::vbd>(b);
    const api::vdi* vdi = s->get<api::vdi>(vbd->VDI.opaque);
    ASSERT_TRUE(vdi);
    EXPECT_EQ(vdi->SR.opaque, local_sr);
    EXPECT_TRUE(vdi->managed);
    EXPECT_EQ(vdi->physical_utilisation, sm::image_info_of(*repos->vdi_path(*s, vbd->VDI.opaque))->actual_size);
    disks[vbd->userdevice] = {vdi->virtual_size, *repos->vdi_path(*s, vbd->VDI.opaque)};
    EXPECT_EQ(s->find(schema::get().class_of<api::vbd>(), b)->created, made_at);
    EXPECT_EQ(s->find(schema::get().class_of<api::vdi>(), vbd->VDI.opaque)->created, made_at);
  }
  ASSERT_EQ(disks.size(), 2u);
  EXPECT_EQ(disks["0"].first, 8 * mib);
  EXPECT_EQ(disks["1"].first, 4 * mib);
  EXPECT_TRUE(reads_pattern(disks["0"].second, 0x61, 0));
  EXPECT_TRUE(reads_pattern(disks["1"].second, 0x62, mib));
  EXPECT_EQ(s->get<api::sr>(local_sr)->virtual_allocation, 12 * mib);

  auto vifs = s->refs_where<api::vif>("VM", *vm);
  ASSERT_EQ(vifs.size(), 1u);
  const api::vif* nic = s->get<api::vif>(vifs[0]);
  EXPECT_EQ(nic->device, "0");
  EXPECT_NE(nic->MAC, "aa:00:00:00:00:01");  // not a restore: a MAC of its own
  EXPECT_EQ(nic->network.opaque, management);  // the bridge here of the same name
  EXPECT_EQ(count(schema::get().class_of<api::network>()), networks);
  EXPECT_EQ(s->find(schema::get().class_of<api::vif>(), vifs[0])->created, made_at);

  for (const auto& name : files_of_sr()) EXPECT_NE(name.rfind(".pending-", 0), 0u) << name;
}

TEST_F(import_test, a_restore_keeps_the_mac_addresses) {
  auto plan = importer->plan(web_vm(), local_sr, {.restore = true});
  ASSERT_TRUE(plan.ok());
  auto vm = importer->commit(*plan);
  ASSERT_TRUE(vm.ok());
  auto s = db->snapshot();
  EXPECT_EQ(s->get<api::vif>(s->refs_where<api::vif>("VM", *vm).at(0))->MAC, "aa:00:00:00:00:01");
}

TEST_F(import_test, a_failure_leaves_no_records_and_no_image_files) {
  const std::set<std::string> files_before = files_of_sr();
  const std::vector<std::size_t> classes{schema::get().class_of<api::vm>(), schema::get().class_of<api::vm_metrics>(),
                                         schema::get().class_of<api::vbd>(), schema::get().class_of<api::vdi>(),
                                         schema::get().class_of<api::vif>(), schema::get().class_of<api::network>()};
  std::vector<std::size_t> counts_before;
  for (auto cls : classes) counts_before.push_back(count(cls));

  // Refused by the VM's settings rules once the disks are images; refused by the database
  // itself (a name beyond what a field may hold) when the transaction applies; and no VM at all.
  auto bad_vcpus = web_vm();
  set_field(record_of(bad_vcpus, "Ref:0"), "VCPUs_at_startup", number(4));
  auto too_long = web_vm();
  set_field(record_of(too_long, "Ref:0"), "name_label", text(std::string(2 * mib, 'x')));
  set_field(record_of(too_long, "Ref:6"), "bridge", text("xenbr9"));  // a network of its own, made and then not
  auto no_vm = web_vm();
  std::erase_if(no_vm.objects, [](const xva_object& o) { return o.cls == "VM"; });
  const std::vector<std::pair<xenserver_metadata*, api::error_code>> failures{
      {&bad_vcpus, api::error_code::IMPORT_ERROR},
      {&too_long, api::error_code::VALUE_NOT_SUPPORTED},
      {&no_vm, api::error_code::IMPORT_ERROR}};
  for (const auto& [m, code] : failures) {
    {
      auto plan = importer->plan(*m, local_sr, {});
      ASSERT_TRUE(plan.ok());
      for (auto& disk : plan->disks()) ASSERT_TRUE(disk.data.write_chunk(0, std::string(mib, '\x5a')));
      auto vm = importer->commit(*plan);
      ASSERT_FALSE(vm.ok());
      EXPECT_EQ(vm.error().code, code) << vm.error().description().back();
    }
    for (std::size_t i = 0; i < classes.size(); ++i) EXPECT_EQ(count(classes[i]), counts_before[i]);
    EXPECT_EQ(files_of_sr(), files_before);  // no image, no marker, no raw file
  }
}

TEST_F(import_test, an_archive_asks_for_nothing_a_host_cannot_give) {
  auto huge = web_vm();
  set_field(record_of(huge, "Ref:4"), "virtual_size", number(sm::max_import_disk_bytes + 1));
  const std::set<std::string> files_before = files_of_sr();
  EXPECT_EQ(importer->plan(huge, local_sr, {}).error().code, api::error_code::IMPORT_ERROR);
  EXPECT_EQ(files_of_sr(), files_before);  // the first disk's raw file went with the plan
}

TEST_F(import_test, metadata_alone_puts_the_vm_onto_disks_already_here) {
  auto missing = importer->plan(web_vm(), local_sr, {.metadata_only = true});
  EXPECT_API_ERROR(missing, IMPORT_ERROR_ATTACHED_DISKS_NOT_FOUND);
  // The disks are here once a first import made them; metadata naming their uuids finds them.
  auto first = importer->plan(web_vm(), local_sr, {});
  ASSERT_TRUE(first.ok());
  auto vm = importer->commit(*first);
  ASSERT_TRUE(vm.ok());
  auto s = db->snapshot();
  auto meta = web_vm();
  std::set<std::string> disks_here;
  for (const auto& b : s->refs_where<api::vbd>("VM", *vm)) {
    const std::string vdi = s->get<api::vbd>(b)->VDI.opaque;
    disks_here.insert(vdi);
    const std::string id = s->get<api::vbd>(b)->userdevice == "0" ? "Ref:3" : "Ref:4";
    set_field(record_of(meta, id), "uuid", text(s->get<api::vdi>(vdi)->uuid));
  }
  auto plan = importer->plan(meta, local_sr, {.metadata_only = true});
  ASSERT_TRUE(plan.ok()) << plan.error().description().back();
  EXPECT_TRUE(plan->disks().empty());
  auto again = importer->commit(*plan);
  ASSERT_TRUE(again.ok());
  s = db->snapshot();
  std::set<std::string> disks_used;
  for (const auto& b : s->refs_where<api::vbd>("VM", *again)) disks_used.insert(s->get<api::vbd>(b)->VDI.opaque);
  EXPECT_EQ(disks_used, disks_here);
}

TEST_F(import_test, the_seeds_legacy_form_is_read_and_made_into_a_vm) {
  auto metadata = read_xva_metadata(
      "<appliance version=\"0.1\">"
      "<vm name=\"vm\"><label> legacy </label><shortdesc>old</shortdesc>"
      "<config mem_set=\"268435456\" vcpus=\"2\"/><hacks is_hvm=\"false\" kernel_boot_cmdline=\"root=/dev/xvda1\"/>"
      "<vbd device=\"xvdb\" function=\"root\" mode=\"w\" vdi=\"disk0\"/></vm>"
      "<vdi name=\"disk0\" size=\"4194304\" source=\"file://disk0\" type=\"dir-gzipped-chunks\"/>"
      "</appliance>",
      false);
  ASSERT_TRUE(metadata.ok()) << metadata.error().description().back();
  ASSERT_TRUE(std::holds_alternative<legacy_metadata>(*metadata));
  auto plan = importer->plan(std::move(*metadata), local_sr, {});
  ASSERT_TRUE(plan.ok());
  ASSERT_NE(plan->disk_under("disk0"), nullptr);
  auto vm = importer->commit(*plan);
  ASSERT_TRUE(vm.ok()) << vm.error().description().back();
  auto s = db->snapshot();
  const api::vm* v = s->get<api::vm>(*vm);
  EXPECT_EQ(v->name_label, "legacy");
  EXPECT_EQ(v->memory_static_max, 256 * mib);
  EXPECT_EQ(v->VCPUs_max, 2);
  EXPECT_EQ(v->PV_args, "root=/dev/xvda1");
  auto vbds = s->refs_where<api::vbd>("VM", *vm);
  ASSERT_EQ(vbds.size(), 1u);
  EXPECT_EQ(s->get<api::vbd>(vbds[0])->userdevice, "1");
  EXPECT_TRUE(s->get<api::vbd>(vbds[0])->bootable);
  EXPECT_EQ(s->get<api::vdi>(s->get<api::vbd>(vbds[0])->VDI.opaque)->virtual_size, 4 * mib);
  // Metadata alone is never the legacy form.
  auto alone = read_xva_metadata("<appliance><vm/></appliance>", true);
  EXPECT_FALSE(alone.ok() && std::holds_alternative<legacy_metadata>(*alone));
}

}  // namespace
}  // namespace xapid::actors
