#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "proto/wire/codec.hpp"

namespace xapid::wire {
namespace {

// A slow, obviously correct decoder to compare the fast one with.
bool reference_valid(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    int len;
    std::uint32_t cp;
    if (b < 0x80) { len = 1; cp = b; }
    else if ((b & 0xE0) == 0xC0) { len = 2; cp = b & 0x1F; }
    else if ((b & 0xF0) == 0xE0) { len = 3; cp = b & 0x0F; }
    else if ((b & 0xF8) == 0xF0) { len = 4; cp = b & 0x07; }
    else return false;
    if (i + len > s.size()) return false;
    for (int k = 1; k < len; ++k) {
      auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr std::uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

TEST(wire_utf8, accepts_valid_text) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii, long enough to use the eight-byte fast path"));
  EXPECT_TRUE(is_valid_utf8("\x7F"));
  EXPECT_TRUE(is_valid_utf8("\xC2\x80"));          // U+0080
  EXPECT_TRUE(is_valid_utf8("\xDF\xBF"));          // U+07FF
  EXPECT_TRUE(is_valid_utf8("\xE0\xA0\x80"));      // U+0800
  EXPECT_TRUE(is_valid_utf8("\xED\x9F\xBF"));      // U+D7FF
  EXPECT_TRUE(is_valid_utf8("\xEE\x80\x80"));      // U+E000
  EXPECT_TRUE(is_valid_utf8("\xEF\xBF\xBF"));      // U+FFFF
  EXPECT_TRUE(is_valid_utf8("\xF0\x90\x80\x80"));  // U+10000
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  EXPECT_TRUE(is_valid_utf8(std::string("nul \0 inside", 12)));
}

TEST(wire_utf8, refuses_overlongs_surrogates_and_out_of_range) {
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xC1\xBF"));
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xE0\x9F\xBF"));      // overlong U+07FF
  EXPECT_FALSE(is_valid_utf8("\xF0\x80\x80\xAF"));  // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xF0\x8F\xBF\xBF"));  // overlong U+FFFF
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // U+D800
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));      // U+DFFF
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\xBD\xED\xB8\x80"));  // CESU-8 surrogate pair
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xFF"));
  EXPECT_FALSE(is_valid_utf8("\xFE"));
}

TEST(wire_utf8, refuses_truncated_and_stray_bytes) {
  EXPECT_FALSE(is_valid_utf8("\x80"));
  EXPECT_FALSE(is_valid_utf8("a\xBF"));
  EXPECT_FALSE(is_valid_utf8("\xC2"));
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));
  EXPECT_FALSE(is_valid_utf8("\xF0\x9F\x98"));
  EXPECT_FALSE(is_valid_utf8("\xE2\x28\xA1"));
  EXPECT_FALSE(is_valid_utf8("\xC2\x41"));
}

TEST(wire_utf8, finds_a_bad_byte_at_every_offset_of_ascii_runs) {
  for (std::size_t at = 0; at < 40; ++at) {
    std::string s(40, 'x');
    s[at] = '\x80';
    EXPECT_FALSE(is_valid_utf8(s)) << at;
    s[at] = '\xC3';
    if (at + 1 < s.size()) s[at + 1] = '\xA9';
    EXPECT_EQ(is_valid_utf8(s), at + 1 < s.size()) << at;
  }
}

TEST(wire_utf8, agrees_with_a_reference_decoder_on_all_short_sequences) {
  std::string s;
  for (unsigned a = 0; a < 256; ++a) {
    s.assign(1, static_cast<char>(a));
    ASSERT_EQ(is_valid_utf8(s), reference_valid(s)) << a;
    for (unsigned b = 0; b < 256; ++b) {
      s.assign({static_cast<char>(a), static_cast<char>(b)});
      ASSERT_EQ(is_valid_utf8(s), reference_valid(s)) << a << ' ' << b;
      if (a < 0xE0 || a > 0xF4) continue;  // three-byte prefixes worth checking exhaustively
      for (unsigned c = 0; c < 256; ++c) {
        s.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
        ASSERT_EQ(is_valid_utf8(s), reference_valid(s)) << a << ' ' << b << ' ' << c;
        if (a < 0xF0 || (c & 0xC0) != 0x80) continue;
        for (unsigned d : {0x00u, 0x7Fu, 0x80u, 0xBFu, 0xC0u}) {
          s.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
                    static_cast<char>(d)});
          ASSERT_EQ(is_valid_utf8(s), reference_valid(s));
        }
      }
    }
  }
}

}  // namespace
// What XML 1.0 can carry: the check both parsers make of a call's strings, and the repair of
// text from outside a call (a guest's report).
TEST(wire_utf8, xml_text_is_utf8_without_control_characters_or_noncharacters) {
  EXPECT_TRUE(is_xml_text("tab\tnl\ncr\r \xC3\xA9 \xEF\xBF\xBD \xF0\x9F\x98\x80 \x7f"));
  for (std::string bad : {std::string("a\0b", 3), std::string("\x01"), std::string("\x1f"), std::string("\xEF\xBF\xBE"),
                          std::string("\xEF\xBF\xBF"), std::string("\xC3"), std::string("\xED\xA0\x80")})
    EXPECT_FALSE(is_xml_text(bad)) << bad;
  EXPECT_EQ(xml_text_of(std::string("a\0b\x01\xC3\xA9\xEF\xBF\xBE\xC3", 10)),
            "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xC3\xA9\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(xml_text_of("plain"), "plain");
}

}  // namespace xapid::wire
