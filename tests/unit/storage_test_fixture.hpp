// The fixture of the storage tests: a database on a real RocksDB in a temporary directory,
// with a manual clock and seeded identifiers, and the helpers the tests share.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <rocksdb/db.h>

#include "storage/database.hpp"
#include "storage/row_values.hpp"
#include "tests/support/api_error_matchers.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::storage {
namespace {

using wire::value;

inline std::size_t cls(std::string_view name) { return *schema::get().class_index(name); }
inline std::size_t fld(std::string_view c, std::string_view f) { return *schema::get().field_index(cls(c), f); }
inline std::optional<std::size_t> fld_index_uuid() { return schema::get().field_index(cls("VM"), "uuid"); }

class storage_test : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }

  void reopen() {
    db_.reset();
    auto r = database::open({dir_.path() + "/db", &clock_, &ids_});
    ASSERT_TRUE(r.ok()) << r.error();
    db_ = std::move(r).value();
  }

  // Commits and expects success.
  generation commit(transaction& t) {
    auto r = db_->commit(std::move(t));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().description().at(0));
    return r.ok() ? *r : 0;
  }

  std::string create_vm(const std::string& name) {
    auto t = db_->begin();
    api::vm rec;
    rec.name_label = name;
    std::string ref = t.create(rec);
    commit(t);
    return ref;
  }

  // One transaction of two operations on a VM: a VBD created for it, a tag added.
  void give_a_vbd_and_a_tag(const std::string& vm) {
    auto t = db_->begin();
    api::vbd vbd;
    vbd.VM.opaque = vm;
    t.create(vbd);
    t.add_to_set(cls("VM"), vm, fld("VM", "tags"), value("t"));
    commit(t);
  }

  template <class R>
  const R* get(const std::string& ref) {
    snap_ = db_->snapshot();
    return snap_->get<R>(ref);
  }

  testing::temp_dir dir_;
  manual_clock clock_;
  id_source ids_{42};
  std::unique_ptr<database> db_;
  std::shared_ptr<const state> snap_;
};

}  // namespace
}  // namespace xapid::storage
