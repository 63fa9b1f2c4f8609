// Identifiers: a seeded source replays, the default one draws from the kernel's CSPRNG, and
// secret refs never come from the seed.
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "common/ids.hpp"

namespace xapid {
namespace {

const std::regex uuid_grammar("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");

TEST(ids, a_seeded_source_replays_its_identifiers) {
  id_source a{9}, b{9};
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.uuid(), b.uuid());
  EXPECT_EQ(a.opaque_ref(), b.opaque_ref());
  EXPECT_EQ(a.mac(), b.mac());
}

TEST(ids, secret_refs_never_come_from_the_seed) {
  id_source a{9}, b{9};
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string ra = a.secret_ref(), rb = b.secret_ref();
    EXPECT_NE(ra, rb);
    EXPECT_TRUE(seen.insert(ra).second);
    EXPECT_TRUE(std::regex_match(ra.substr(10), uuid_grammar)) << ra;
  }
}

TEST(ids, the_default_source_draws_distinct_well_formed_uuids) {
  id_source a, b;
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string u = a.uuid();
    EXPECT_TRUE(std::regex_match(u, uuid_grammar)) << u;
    EXPECT_TRUE(seen.insert(u).second);
    EXPECT_TRUE(seen.insert(b.uuid()).second);
  }
  EXPECT_TRUE(std::regex_match(a.mac(), std::regex("c2(:[0-9a-f]{2}){5}")));
}

TEST(ids, only_the_uuid_grammar_is_a_uuid) {
  EXPECT_TRUE(is_uuid("0c9a4b6e-2a7d-4e1f-9b3c-5d6e7f809a1b"));
  EXPECT_TRUE(is_uuid("0C9A4B6E-2A7D-4E1F-9B3C-5D6E7F809A1B"));
  for (const char* bad : {"", "../../victim", "0c9a4b6e-2a7d-4e1f-9b3c-5d6e7f809a1", "0c9a4b6e-2a7d-4e1f-9b3c-5d6e7f809a1b/",
                          "0c9a4b6e/2a7d-4e1f-9b3c-5d6e7f809a1b", "0c9a4b6e-2a7d-4e1f-9b3c-5d6e7f809a1g",
                          "..9a4b6e-2a7d-4e1f-9b3c-5d6e7f809a1b", "0c9a4b6e-2a7d-4e1f-9b3c-5d6e7f80\0a1b"})
    EXPECT_FALSE(is_uuid(bad)) << bad;
}

}  // namespace
}  // namespace xapid
