// A host's identity in its pool (DIR/pool-member) and the address of its Raft traffic.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>

#include "common/private_file.hpp"
#include "pool/member_identity.hpp"
#include "pool/pool_log.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::pool {
namespace {

TEST(member_identity, a_first_boot_makes_a_private_pool_of_one_and_keeps_it) {
  testing::temp_dir dir;
  auto made = load_or_create_identity(dir.path());
  ASSERT_TRUE(made.ok()) << made.error();
  EXPECT_NE(made->raft_id, 0u);
  EXPECT_EQ(made->pool_id.size(), 16u);
  EXPECT_EQ(made->secret.size(), 32u);
  EXPECT_TRUE(made->founder);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "pool-member").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto again = load_or_create_identity(dir.path());
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(again->raft_id, made->raft_id);
  EXPECT_EQ(again->pool_id, made->pool_id);
  EXPECT_EQ(again->secret, made->secret);

  // Two pools never share a secret or an id.
  testing::temp_dir other;
  auto second = load_or_create_identity(other.path());
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second->secret, made->secret);
  EXPECT_NE(second->pool_id, made->pool_id);
  EXPECT_NE(second->raft_id, made->raft_id);
}

TEST(member_identity, text_round_trips_and_a_member_stays_a_member) {
  member_identity id = member_identity::new_pool();
  id.founder = false;
  id.admitted = {7, 9};
  id.joined_at_index = 1234;
  auto back = parse_identity(to_text(id));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->raft_id, id.raft_id);
  EXPECT_EQ(back->pool_id, id.pool_id);
  EXPECT_EQ(back->secret, id.secret);
  EXPECT_FALSE(back->founder);
  EXPECT_EQ(back->admitted, id.admitted);
  EXPECT_EQ(back->joined_at_index, 1234u);
}

// A damaged file is an error naming it: a new pool made in its place would split the pool.
TEST(member_identity, a_damaged_file_is_refused_never_replaced) {
  const std::string good = to_text(member_identity::new_pool());
  const std::vector<std::pair<std::string, std::string>> damaged = {
      {"", "all needed"},
      {"raft-id = 0\n", "raft-id"},
      {"raft-id = 9223372036854775808\n", "raft-id"},
      {"raft-id = 12x\n", "raft-id"},
      {"pool-id = abc\n", "pool-id"},
      {"secret = " + std::string(64, 'g') + "\n", "secret"},
      {"founder = maybe\n", "founder"},
      {good + "joined-at-index = -1\n", "joined-at-index"},
      {"colour = blue\n", "unknown"},
      {"no equals sign\n", "NAME = VALUE"},
      {good.substr(0, good.find("secret")), "all needed"},
  };
  for (const auto& [text, says] : damaged) {
    testing::temp_dir dir;
    ASSERT_TRUE(write_private_file(dir / "pool-member", text));
    auto loaded = load_or_create_identity(dir.path());
    ASSERT_FALSE(loaded.ok()) << text;
    EXPECT_NE(loaded.error().find(dir / "pool-member"), std::string::npos) << loaded.error();
    EXPECT_NE(loaded.error().find(says), std::string::npos) << text << " -> " << loaded.error();
    EXPECT_EQ(read_whole_file(dir / "pool-member"), text);  // left as it was
  }
}

TEST(raft_address, follows_listen_unless_given) {
  EXPECT_EQ(raft_address("10.0.0.5:443", "").value(), "10.0.0.5:445");
  EXPECT_EQ(raft_address("127.0.0.3:0", "").value(), "127.0.0.3:0");
  EXPECT_EQ(raft_address("127.0.0.3:80", "127.0.0.3:9000").value(), "127.0.0.3:9000");
  EXPECT_FALSE(raft_address("127.0.0.3:65534", "").ok());
  EXPECT_FALSE(raft_address("127.0.0.3", "").ok());
  EXPECT_FALSE(raft_address("127.0.0.3:80", "nowhere").ok());
  EXPECT_FALSE(raft_address("127.0.0.3:80", "127.0.0.3:70000").ok());
  EXPECT_FALSE(raft_address("127.0.0.3:80", ":80").ok());
}

TEST(peer_address, follows_listen_unless_given_and_finds_the_masters) {
  EXPECT_EQ(peer_address("10.0.0.5:443", "").value(), "10.0.0.5:444");
  EXPECT_EQ(peer_address("127.0.0.3:0", "").value(), "127.0.0.3:0");
  EXPECT_EQ(peer_address("127.0.0.3:80", "127.0.0.3:9001").value(), "127.0.0.3:9001");
  EXPECT_FALSE(peer_address("127.0.0.3:80", "127.0.0.3").ok());
  // The master's API address, its port this host's own unless given.
  EXPECT_EQ(master_peer_address("127.0.0.1", "127.0.0.2:8080").value(), "127.0.0.1:8081");
  EXPECT_EQ(master_peer_address("127.0.0.1:9000", "127.0.0.2:8080").value(), "127.0.0.1:9001");
  EXPECT_FALSE(master_peer_address("127.0.0.1", "127.0.0.2:0").ok());
  for (const char* bad : {"", "a b", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65535", "127.0.0.1:x", "x/y:80"})
    EXPECT_FALSE(master_peer_address(bad, "127.0.0.2:8080").ok()) << bad;
}

}  // namespace
}  // namespace xapid::pool
