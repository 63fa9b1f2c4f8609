// Storage repositories on a real database with real qcow2 images (qemu-img, qemu-io): each
// driver's lifecycle, VDI snapshot/clone/copy with guest data, sizes as the files report them,
// a scan after images came and went behind the SR's back, and the refusals.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "actors/first_boot.hpp"
#include "actors/storage_repos.hpp"
#include "sm/images.hpp"
#include "sm/qemu_img.hpp"
#include "tests/support/api_error_matchers.hpp"
#include "tests/support/qemu_io.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::actors {
namespace {

using storage::schema;
using testing::reads_pattern;
using testing::write_pattern;
constexpr std::int64_t gib = std::int64_t{1} << 30;
namespace fs = std::filesystem;

struct repos_test : ::testing::Test {
  testing::temp_dir dir;
  testing::temp_dir outside;  // a directory of the operator's, for file and iso SRs
  real_clock clk;
  std::unique_ptr<storage::database> db;
  std::unique_ptr<host_actors> actors;
  std::unique_ptr<storage_repos> repos;
  std::string host, local_sr;
  int n = 0;

  void SetUp() override {
    db = std::move(storage::database::open({dir / "db"})).value();
    xen::host_info hw{4, "v", "m", 2000, std::int64_t{8} << 30, std::int64_t{7} << 30, "4.17"};
    auto id = actors::ensure_pool_and_host(*db, dir.path(), "127.0.0.1", hw);
    ASSERT_TRUE(id.ok());
    host = id->host;
    db->snapshot()->for_each(schema::get().class_of<api::pool>(), [&](const std::string&, const storage::row& r) {
      local_sr = static_cast<const api::pool*>(r.record.get())->default_SR.opaque;
      return false;
    });
    actors = std::make_unique<host_actors>(*db);
    repos = std::make_unique<storage_repos>(*db, *actors, clk, host, dir.path());
    ASSERT_TRUE(repos->start().ok());
  }

  std::string key() { return "OpaqueRef:task-" + std::to_string(++n); }
  api::vdi vdi(const std::string& ref) const { return *db->snapshot()->get<api::vdi>(ref); }
  api::sr sr(const std::string& ref) const { return *db->snapshot()->get<api::sr>(ref); }
  std::string path(const std::string& vdi_ref) const { return *repos->vdi_path(*db->snapshot(), vdi_ref); }
  std::vector<std::string> vdis_of(const std::string& sr_ref) const {
    return db->snapshot()->refs_where<api::vdi>("SR", sr_ref);
  }
  std::string make_vdi(const std::string& sr_ref, std::int64_t size) {
    auto r = repos->vdi_create(sr_ref, "disk", "", size, api::vdi_type::user, false, false, {}, {}, key());
    EXPECT_TRUE(r.ok()) << (r ? "" : r.error().description().back());
    return r ? *r : std::string();
  }
};

TEST_F(repos_test, every_driver_is_an_sm_object_with_its_capabilities) {
  std::map<std::string, std::vector<std::string>> caps;
  db->snapshot()->for_each(schema::get().class_of<api::sm>(), [&](const std::string&, const storage::row& r) {
    const auto* sm = static_cast<const api::sm*>(r.record.get());
    caps[sm->type] = sm->capabilities;
    return true;
  });
  EXPECT_EQ(caps.size(), 4u);
  auto has = [&](const std::string& type, const std::string& c) {
    return std::find(caps[type].begin(), caps[type].end(), c) != caps[type].end();
  };
  EXPECT_TRUE(has("ext", "VDI_SNAPSHOT"));
  EXPECT_TRUE(has("nfs", "VDI_CREATE"));
  EXPECT_FALSE(has("iso", "VDI_CREATE"));
  // A restart makes no second set, and clears what unfinished transfers left.
  std::string sr_dir = *repos->directory(*db->snapshot(), local_sr);
  { std::ofstream(sr_dir + "/.import-left-behind.raw") << "x"; }
  ASSERT_TRUE(repos->start().ok());
  EXPECT_FALSE(fs::exists(sr_dir + "/.import-left-behind.raw"));
  EXPECT_EQ(db->snapshot()->count(schema::get().class_of<api::sm>()), 4u);
}

TEST_F(repos_test, vdis_are_qcow2_images_whose_sizes_the_files_give) {
  std::string v = make_vdi(local_sr, 100 * gib);
  auto info = sm::image_info_of(path(v));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->format, "qcow2");
  EXPECT_EQ(vdi(v).virtual_size, 100 * gib);
  EXPECT_EQ(vdi(v).physical_utilisation, info->actual_size);
  EXPECT_EQ(sr(local_sr).virtual_allocation, 100 * gib);
  EXPECT_GT(sr(local_sr).physical_size, 0);
  write_pattern(path(v), 0x5a, 0);
  ASSERT_TRUE(repos->vdi_update(v, key()).ok());
  EXPECT_EQ(vdi(v).physical_utilisation, sm::image_info_of(path(v))->actual_size);
  ASSERT_TRUE(repos->vdi_resize(v, 120 * gib, false, key()).ok());
  EXPECT_EQ(sm::image_info_of(path(v))->virtual_size, 120 * gib);
  EXPECT_EQ(vdi(v).virtual_size, 120 * gib);
  EXPECT_API_ERROR(repos->vdi_resize(v, gib, false, key()), VDI_TOO_SMALL, v, std::to_string(120 * gib));
  std::string file = path(v);
  ASSERT_TRUE(repos->vdi_destroy(v, key()).ok());
  EXPECT_FALSE(fs::exists(file));
  EXPECT_EQ(sr(local_sr).virtual_allocation, 0);
}

TEST_F(repos_test, snapshot_clone_and_copy_keep_the_data_of_their_moment) {
  std::string v = make_vdi(local_sr, gib);
  write_pattern(path(v), 0x61, 0);
  auto snap = repos->vdi_snapshot(v, key());
  ASSERT_TRUE(snap.ok());
  EXPECT_TRUE(vdi(*snap).is_a_snapshot);
  EXPECT_EQ(vdi(*snap).snapshot_of.opaque, v);
  write_pattern(path(v), 0x62, 0);
  auto clone = repos->vdi_clone(v, key());
  ASSERT_TRUE(clone.ok());
  write_pattern(path(v), 0x63, 0);
  auto copy = repos->vdi_copy(*snap, "OpaqueRef:NULL", key());
  ASSERT_TRUE(copy.ok());
  EXPECT_TRUE(reads_pattern(path(*snap), 0x61, 0));
  EXPECT_TRUE(reads_pattern(path(*clone), 0x62, 0));
  EXPECT_TRUE(reads_pattern(path(v), 0x63, 0));
  EXPECT_TRUE(reads_pattern(path(*copy), 0x61, 0));
  EXPECT_TRUE(sm::image_info_of(path(*copy))->backing_file.empty());
  // Destroying the snapshot and the clone coalesces the chain; the VDI reads as before.
  ASSERT_TRUE(repos->vdi_destroy(*snap, key()).ok());
  ASSERT_TRUE(repos->vdi_destroy(*clone, key()).ok());
  EXPECT_TRUE(sm::image_info_of(path(v))->backing_file.empty());
  EXPECT_TRUE(reads_pattern(path(v), 0x63, 0));
  for (const auto& e : fs::directory_iterator(*repos->directory(*db->snapshot(), local_sr)))
    EXPECT_NE(e.path().filename().string()[0], '.') << "a parent was left behind: " << e.path();
}

TEST_F(repos_test, a_file_sr_in_a_given_directory_and_its_lifecycle) {
  auto created = repos->sr_create(host, {{"location", outside.path()}}, 0, "shared disks", "", "file", "user", true, {});
  ASSERT_TRUE(created.ok()) << created.error().description().back();
  std::string s = *created;
  std::string v = make_vdi(s, gib);
  EXPECT_TRUE(fs::exists(outside.path() + "/" + vdi(v).location));
  std::string pbd = db->snapshot()->refs_where<api::pbd>("SR", s).front();
  EXPECT_API_ERROR(repos->sr_destroy(s, key()), SR_HAS_PBD, s);  // plugged somewhere: unplugged first
  ASSERT_TRUE(repos->pbd_unplug(pbd).ok());
  EXPECT_API_ERROR(repos->sr_destroy(s, key()), SR_NOT_EMPTY);
  ASSERT_TRUE(repos->pbd_plug(pbd).ok());
  ASSERT_TRUE(repos->vdi_destroy(v, key()).ok());
  // Unplugged, it is unreachable; forgotten, its directory stays with its files.
  std::string kept = make_vdi(s, gib);
  std::string kept_file = outside.path() + "/" + vdi(kept).location;
  EXPECT_API_ERROR(repos->pbd_destroy(pbd), OPERATION_NOT_ALLOWED, "the PBD is plugged: unplug it first");
  EXPECT_API_ERROR(repos->sr_forget(s, key()), SR_HAS_PBD, s);
  ASSERT_TRUE(repos->pbd_unplug(pbd).ok());
  EXPECT_API_ERROR(repos->vdi_create(s, "x", "", gib, api::vdi_type::user, false, false, {}, {}, key()), SR_NOT_ATTACHED, s);
  ASSERT_TRUE(repos->sr_forget(s, key()).ok());
  EXPECT_EQ(db->snapshot()->get<api::sr>(s), nullptr);
  EXPECT_EQ(db->snapshot()->get<api::vdi>(kept), nullptr);
  EXPECT_TRUE(fs::exists(kept_file));  // forgetting an SR loses no data
}

TEST_F(repos_test, destroying_an_sr_removes_only_a_directory_xapid_made) {
  { std::ofstream(outside.path() + "/operators-notes.txt") << "keep me"; }
  auto theirs = repos->sr_create(host, {{"location", outside.path()}}, 0, "ext elsewhere", "", "ext", "user", false, {});
  ASSERT_TRUE(theirs.ok());
  auto ours = repos->sr_create(host, {}, 0, "ext of ours", "", "ext", "user", false, {});
  ASSERT_TRUE(ours.ok());
  std::string our_dir = *repos->directory(*db->snapshot(), *ours);
  EXPECT_EQ(our_dir, dir.path() + "/sr/" + sr(*ours).uuid);
  for (const std::string& s : {*theirs, *ours}) {
    ASSERT_TRUE(repos->pbd_unplug(db->snapshot()->refs_where<api::pbd>("SR", s).front()).ok());
    ASSERT_TRUE(repos->sr_destroy(s, key()).ok());
  }
  EXPECT_TRUE(fs::exists(outside.path() + "/operators-notes.txt"));
  EXPECT_FALSE(fs::exists(our_dir));
}

TEST_F(repos_test, a_scan_finds_what_came_and_went_behind_the_srs_back) {
  std::string v = make_vdi(local_sr, gib);
  std::string sr_dir = *repos->directory(*db->snapshot(), local_sr);
  ASSERT_TRUE(sm::create_qcow2(sr_dir + "/brought-in.qcow2", 2 * gib).ok());
  fs::remove(path(v));
  ASSERT_TRUE(repos->sr_scan(local_sr, key()).ok());
  auto vdis = vdis_of(local_sr);
  ASSERT_EQ(vdis.size(), 1u);
  EXPECT_EQ(vdi(vdis.front()).location, "brought-in.qcow2");
  EXPECT_EQ(vdi(vdis.front()).virtual_size, 2 * gib);
  EXPECT_EQ(db->snapshot()->get<api::vdi>(v), nullptr);
}

TEST_F(repos_test, an_iso_library_shows_its_images_as_read_only_vdis) {
  { std::ofstream(outside.path() + "/debian.iso") << std::string(4096, 'x'); }
  { std::ofstream(outside.path() + "/notes.txt") << "not an image"; }
  auto s = repos->sr_create(host, {{"location", outside.path()}}, 0, "ISOs", "", "iso", "iso", true, {});
  ASSERT_TRUE(s.ok());
  auto vdis = vdis_of(*s);
  ASSERT_EQ(vdis.size(), 1u);
  EXPECT_EQ(vdi(vdis.front()).name_label, "debian.iso");
  EXPECT_TRUE(vdi(vdis.front()).read_only);
  EXPECT_EQ(vdi(vdis.front()).virtual_size, 4096);
  EXPECT_API_ERROR(repos->vdi_create(*s, "x", "", gib, api::vdi_type::user, false, false, {}, {}, key()),
                   SR_OPERATION_NOT_SUPPORTED, *s);
  EXPECT_API_ERROR(repos->vdi_destroy(vdis.front(), key()), SR_OPERATION_NOT_SUPPORTED, *s);
}

TEST_F(repos_test, bad_drivers_and_configurations_are_refused_with_the_reason) {
  EXPECT_API_ERROR(repos->sr_create(host, {}, 0, "x", "", "zfs", "", false, {}), SR_UNKNOWN_DRIVER, "zfs");
  auto missing = repos->sr_create(host, {{"location", outside.path() + "/nope"}}, 0, "x", "", "file", "", false, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, api::error_code::SR_BACKEND_FAILURE);
  auto nfs = repos->sr_create(host, {{"server", "127.0.0.1"}, {"serverpath", "/nowhere"}}, 0, "x", "", "nfs", "", true, {});
  ASSERT_FALSE(nfs.ok());
  EXPECT_EQ(nfs.error().code, api::error_code::SR_BACKEND_FAILURE);
  EXPECT_NE(nfs.error().params.at(0), "0");  // mount's exit status, with its messages beside it
  auto no_server = repos->sr_create(host, {{"serverpath", "/x"}}, 0, "x", "", "nfs", "", true, {});
  ASSERT_FALSE(no_server.ok());
  EXPECT_NE(no_server.error().params.at(2).find("server"), std::string::npos);
  EXPECT_EQ(db->snapshot()->count(schema::get().class_of<api::sr>()), 1u);  // only the local SR: nothing half-made
}

// An SR's uuid and location name directories where xapid, as root, writes and deletes images:
// a client can name neither a path outside what it was given nor one another SR uses.
TEST_F(repos_test, sr_uuids_and_locations_cannot_reach_outside_their_directory) {
  EXPECT_API_ERROR(repos->sr_introduce("../../victim", "x", "", "ext", "user", false, {}), UUID_INVALID, "SR",
                   "../../victim");
  EXPECT_API_ERROR(repos->sr_introduce("0c9a4b6e-2a7d-4e1f-9b3c-5d6e7f809a1b/..", "x", "", "ext", "user", false, {}),
                   UUID_INVALID, "SR", "0c9a4b6e-2a7d-4e1f-9b3c-5d6e7f809a1b/..");
  fs::create_directories(outside / "images");
  fs::create_directory_symlink("/etc", outside / "to-etc");
  fs::create_directories(outside / "a");
  const std::string data_dir_sr = dir.path() + "/sr/0c9a4b6e-2a7d-4e1f-9b3c-5d6e7f809a1b";
  fs::create_directories(data_dir_sr);
  for (const std::string& bad :
       {std::string("/"), std::string("/etc"), std::string("/proc"), std::string("/sys/kernel"), std::string("/dev/shm"),
        std::string("/usr/lib"), std::string("/tmp"), std::string("relative/path"), outside.path() + "/a/../images",
        outside.path() + "/./images", outside.path() + "//images", outside.path() + "/to-etc", dir.path(),
        dir.path() + "/db", data_dir_sr, outside.path().substr(0, outside.path().rfind('/'))}) {
    for (const char* type : {"file", "iso", "ext"}) {
      SCOPED_TRACE(std::string(type) + " " + bad);
      EXPECT_API_ERROR(repos->sr_create(host, {{"location", bad}}, 0, "x", "", type, "user", false, {}), INVALID_VALUE,
                       "device_config:location", bad);
    }
  }
  // The same directory for two SRs, however it is spelled.
  auto first = repos->sr_create(host, {{"location", outside / "images"}}, 0, "one", "", "file", "user", false, {});
  ASSERT_TRUE(first.ok()) << first.error().description().back();
  fs::create_directory_symlink(outside / "images", outside / "again");
  EXPECT_API_ERROR(repos->sr_create(host, {{"location", outside / "again"}}, 0, "two", "", "file", "user", false, {}),
                   LOCATION_NOT_UNIQUE, *first, outside / "again");
  // A PBD made by hand with a bad location does not plug.
  auto introduced = repos->sr_introduce("", "intro", "", "file", "user", false, {});
  ASSERT_TRUE(introduced.ok());
  auto pbd = repos->pbd_create(host, *introduced, {{"location", "/etc"}}, {});
  ASSERT_TRUE(pbd.ok());
  EXPECT_API_ERROR(repos->pbd_plug(*pbd), INVALID_VALUE, "device_config:location", "/etc");
  EXPECT_TRUE(fs::exists(data_dir_sr));
}

TEST_F(repos_test, a_vdi_location_is_a_plain_file_name_of_its_sr) {
  std::string sr_dir = *repos->directory(*db->snapshot(), local_sr);
  { std::ofstream(sr_dir + "/.base-hidden.qcow2") << "x"; }
  for (const std::string& bad : {std::string("../../etc/shadow"), std::string(".."), std::string(".base-hidden.qcow2"),
                                 std::string("/etc/shadow")}) {
    api::vdi rec;
    rec.SR.opaque = local_sr;
    rec.location = bad;
    SCOPED_TRACE(bad);
    EXPECT_API_ERROR(repos->vdi_introduce(rec), VDI_LOCATION_MISSING, local_sr, bad);
  }
  std::string image = make_vdi(local_sr, gib);
  api::vdi rec;
  rec.SR.opaque = local_sr;
  rec.location = vdi(image).location;
  rec.uuid = "../x";
  EXPECT_API_ERROR(repos->vdi_introduce(rec), UUID_INVALID, "VDI", "../x");
}

TEST_F(repos_test, an_iso_library_is_read_only) {
  fs::create_directories(outside / "isos");
  auto iso = repos->sr_create(host, {{"location", outside / "isos"}}, 0, "isos", "", "iso", "iso", false, {});
  ASSERT_TRUE(iso.ok());
  EXPECT_API_ERROR(repos->directory(*db->snapshot(), *iso, true), SR_OPERATION_NOT_SUPPORTED, *iso);
  EXPECT_TRUE(repos->directory(*db->snapshot(), *iso).ok());
  std::string disk = make_vdi(local_sr, gib);
  EXPECT_API_ERROR(repos->vdi_copy(disk, *iso, key()), SR_OPERATION_NOT_SUPPORTED, *iso);
}

// A crash between making an image and committing its VDI left a file that SR.scan then adopted as
// the user's disk. Images are marked pending until their record commits; a restart removes those
// still marked that no VDI names, and keeps the recorded ones.
TEST_F(repos_test, images_of_a_transaction_that_never_committed_are_removed_at_start) {
  std::string sr_dir = *repos->directory(*db->snapshot(), local_sr);
  std::string kept = make_vdi(local_sr, gib);
  ASSERT_FALSE(fs::exists(sr_dir + "/.pending-" + vdi(kept).location));  // committed: no marker left
  // What a crash leaves: a marked image no record names, and a marker beside a recorded one.
  const std::string orphan = "0c9a4b6e-2a7d-4e1f-9b3c-5d6e7f809a1b.qcow2";
  ASSERT_TRUE(sm::run_tool({"qemu-img", "create", "-q", "-f", "qcow2", sr_dir + "/" + orphan, "1M"}).ok());
  sm::mark_pending(sr_dir + "/" + orphan);
  sm::mark_pending(sr_dir + "/" + vdi(kept).location);
  repos.reset();
  actors.reset();
  actors = std::make_unique<host_actors>(*db);
  repos = std::make_unique<storage_repos>(*db, *actors, clk, host, dir.path());
  ASSERT_TRUE(repos->start().ok());
  EXPECT_FALSE(fs::exists(sr_dir + "/" + orphan));
  EXPECT_FALSE(fs::exists(sr_dir + "/.pending-" + orphan));
  EXPECT_TRUE(fs::exists(path(kept)));
  EXPECT_FALSE(fs::exists(sr_dir + "/.pending-" + vdi(kept).location));
  ASSERT_TRUE(repos->sr_scan(local_sr, key()).ok());
  EXPECT_EQ(vdis_of(local_sr).size(), 1u);  // the scan adopted nothing
}

}  // namespace
}  // namespace xapid::actors
