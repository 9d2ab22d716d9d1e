#include <string.h>

#include <string>

#include "../core/flash.h"
#include "../core/pin.h"
#include "check.h"

namespace flash = isobox::flash;

namespace {
constexpr flash::Literal<sizeof "pull"> kPull ISOBOX_FLASH{"pull"};
constexpr flash::Table<uint32_t, 3> kWords ISOBOX_FLASH = {0x428a2f98u, 0u, 0xffffffffu};
constexpr flash::Table<uint8_t, 4> kBytes ISOBOX_FLASH = {0x00, 0x7f, 0x80, 0xff};
}  // namespace

// On the host, flash data is stored scrambled: code that reads a flash
// string or table directly instead of through the accessors reads
// something else, and the tests of what it builds fail.
TEST(flash_direct_reads_are_wrong_on_the_host) {
  CHECK(memcmp(kPull.enc, "pull", 4) != 0);
  CHECK(kWords.enc[0] != 0x428a2f98u);
  CHECK(kBytes.enc[1] != 0x7f);
  flash::Str s = ISOBOX_FSTR("status");
  CHECK_EQ(s.size(), 6u);
}

TEST(flash_accessors_read_what_was_written) {
  flash::Str s = kPull.str();
  CHECK_EQ(s[0], 'p');
  CHECK_EQ(s[4], '\0');
  CHECK_EQ(s.size(), 4u);
  CHECK_EQ(kPull.size(), 4u);
  CHECK(flash::Equals("pull", s));
  CHECK(!flash::Equals("pul", s));
  CHECK(!flash::Equals("pulls", s));
  CHECK(!flash::Equals("", s));
  CHECK(flash::Equals("", ISOBOX_FSTR("")));
  size_t n = 0;
  CHECK(flash::StartsWith("pull/x", s, &n));
  CHECK_EQ(n, 4u);
  CHECK(!flash::StartsWith("pul", s));
  CHECK(flash::StartsWith("anything", ISOBOX_FSTR("")));
  char out[8];
  CHECK_STR(flash::Copy(s, out, sizeof out), "pull");
  CHECK_STR(flash::Copy(ISOBOX_FSTR("longer than eight"), out, sizeof out), "longer ");  // cut, terminated
  CHECK_STR(flash::Copy(s, out, 1), "");
  CHECK_EQ(kWords[0], 0x428a2f98u);
  CHECK_EQ(kWords[1], 0u);
  CHECK_EQ(kWords[2], 0xffffffffu);
  CHECK_EQ(kBytes[3], 0xff);
  const uint8_t ram[4] = {0x00, 0x7f, 0x80, 0xfe};
  CHECK(flash::Compare(ram, kBytes, 3) == 0);
  CHECK(flash::Compare(ram, kBytes, 4) < 0);
  const uint8_t more[4] = {0x00, 0x80, 0x00, 0x00};
  CHECK(flash::Compare(more, kBytes, 4) > 0);
}

// Every pin error's sentence fits the buffer the callers give it, uncut.
TEST(flash_pin_error_texts_fit) {
  for (int e = 0; e <= static_cast<int>(isobox::PinError::kRsaExponent); ++e) {
    char big[256], text[isobox::kPinErrorTextSize];
    isobox::PinErrorText(static_cast<isobox::PinError>(e), big, sizeof big);
    isobox::PinErrorText(static_cast<isobox::PinError>(e), text, sizeof text);
    CHECK(strlen(big) > 1);
    CHECK_STR(text, big);
  }
}

TEST(flash_nth_of_a_list) {
  static constexpr char kList[] = "zero\0one\0\0three";
  static constexpr flash::Literal<sizeof kList> k ISOBOX_FLASH{kList};
  char out[8];
  CHECK_STR(flash::Copy(flash::Nth(k, 0), out, sizeof out), "zero");
  CHECK_STR(flash::Copy(flash::Nth(k, 1), out, sizeof out), "one");
  CHECK_STR(flash::Copy(flash::Nth(k, 2), out, sizeof out), "");
  CHECK_STR(flash::Copy(flash::Nth(k, 3), out, sizeof out), "three");
  CHECK_STR(flash::Copy(flash::Nth(k, 4), out, sizeof out), "three");  // past the end: the last
  CHECK_STR(flash::Copy(flash::Nth(k, 99), out, sizeof out), "three");
  char text[isobox::kPinErrorTextSize];
  CHECK_STR(isobox::PinErrorText(isobox::PinError::kOk, text, sizeof text), "ok");
  CHECK_STR(isobox::PinErrorText(isobox::PinError::kRsaSize, text, sizeof text), "RSA key must have 2048 to 3072 bits");
  CHECK_STR(isobox::PinErrorText(static_cast<isobox::PinError>(200), text, sizeof text), "invalid key");
}
