// Remembered password checks: only what was remembered, in its scope, for its time, within its
// capacity; and the hash check itself.
#include <gtest/gtest.h>

#include <thread>

#include "gateway/auth/passwords.hpp"

namespace xapid::gateway {
namespace {

TEST(verified_credentials, remembers_exactly_the_scope_user_and_password_it_was_given) {
  verified_credentials v;
  EXPECT_FALSE(v.remembered("hash-1", "root", "secret"));
  v.remember("hash-1", "root", "secret");
  EXPECT_TRUE(v.remembered("hash-1", "root", "secret"));
  EXPECT_FALSE(v.remembered("hash-1", "root", "secreT"));
  EXPECT_FALSE(v.remembered("hash-1", "root", "secret "));
  EXPECT_FALSE(v.remembered("hash-1", "roo", "tsecret"));   // the parts are not run together
  EXPECT_FALSE(v.remembered("hash-2", "root", "secret"));   // root's password changed
  EXPECT_FALSE(v.remembered("pam:login", "root", "secret"));
  v.forget_all();
  EXPECT_FALSE(v.remembered("hash-1", "root", "secret"));
}

TEST(verified_credentials, forgets_after_its_time) {
  verified_credentials v(std::chrono::seconds(1));
  v.remember("s", "u", "p");
  EXPECT_TRUE(v.remembered("s", "u", "p"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_FALSE(v.remembered("s", "u", "p"));
}

TEST(verified_credentials, keeps_at_most_its_capacity_the_oldest_going_first) {
  verified_credentials v(std::chrono::seconds(60), 100);
  for (int i = 0; i < 250; ++i) v.remember("s", "u" + std::to_string(i), "p");
  int kept = 0;
  for (int i = 0; i < 250; ++i) kept += v.remembered("s", "u" + std::to_string(i), "p");
  EXPECT_EQ(kept, 100);
  EXPECT_TRUE(v.remembered("s", "u249", "p"));
  EXPECT_FALSE(v.remembered("s", "u0", "p"));
}

TEST(passwords, a_hash_accepts_its_password_only) {
  const std::string h = hash_password("correct horse");
  ASSERT_FALSE(h.empty());
  EXPECT_TRUE(verify_password("correct horse", h));
  EXPECT_FALSE(verify_password("correct hors", h));
  EXPECT_FALSE(verify_password("correct horse", ""));
}

}  // namespace
}  // namespace xapid::gateway
