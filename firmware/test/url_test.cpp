#include <string.h>

#include <string>

#include "../core/url.h"
#include "check.h"

using isobox::BuildSubscribeUrl;
using isobox::Endpoint;

namespace {
const char* kChan = "0123456789abcdef0123456789abcdef.0123456789abcdef0123456789abcdef01234567";
const char* kMid = "17953984070000000000000007";
}  // namespace

TEST(url_without_and_with_mid) {
  char out[ISOBOX_FW_URL_MAX + 1];
  size_t n = BuildSubscribeUrl(Endpoint{"192.168.1.10", 8090, false}, kChan, nullptr, out, sizeof out);
  CHECK_STR(out,
            "ws://192.168.1.10:8090/bitrix/subws/?CHANNEL_ID=0123456789abcdef0123456789abcdef."
            "0123456789abcdef0123456789abcdef01234567");
  CHECK_EQ(n, strlen(out));
  n = BuildSubscribeUrl(Endpoint{"relay.lan", 65535, true}, kChan, kMid, out, sizeof out);
  CHECK_STR(out,
            "wss://relay.lan:65535/bitrix/subws/?CHANNEL_ID=0123456789abcdef0123456789abcdef."
            "0123456789abcdef0123456789abcdef01234567&mid=17953984070000000000000007");
  CHECK_EQ(n, strlen(out));
  CHECK(BuildSubscribeUrl(Endpoint{"h", 1, false}, kChan, "", out, sizeof out) > 0);
  CHECK(strstr(out, "ws://h:1/") == out);
  CHECK(strstr(out, "mid=") == nullptr);
}

TEST(url_composite_channel_is_encoded) {
  char out[400];
  const char* comp =
      "0123456789abcdef0123456789abcdef:fedcba9876543210fedcba9876543210.0123456789abcdef0123456789abcdef01234567";
  CHECK(BuildSubscribeUrl(Endpoint{"h", 80, false}, comp, nullptr, out, sizeof out) > 0);
  CHECK(strstr(out, "CHANNEL_ID=0123456789abcdef0123456789abcdef%3Afedcba98") != nullptr);
}

TEST(url_refuses_bad_input) {
  char out[400];
  CHECK_EQ(BuildSubscribeUrl(Endpoint{"", 80, false}, kChan, nullptr, out, sizeof out), 0);
  CHECK_STR(out, "");
  CHECK_EQ(BuildSubscribeUrl(Endpoint{nullptr, 80, false}, kChan, nullptr, out, sizeof out), 0);
  CHECK_EQ(BuildSubscribeUrl(Endpoint{"evil/host?x", 80, false}, kChan, nullptr, out, sizeof out), 0);
  CHECK_EQ(BuildSubscribeUrl(Endpoint{"h", 0, false}, kChan, nullptr, out, sizeof out), 0);
  CHECK_EQ(BuildSubscribeUrl(Endpoint{"h", 80, false}, "0123456789abcdef0123456789abcdef", nullptr, out, sizeof out), 0);
  CHECK_EQ(BuildSubscribeUrl(Endpoint{"h", 80, false}, kChan, "123", out, sizeof out), 0);
  CHECK_EQ(BuildSubscribeUrl(Endpoint{"h", 80, false}, kChan, "1795398407000000000000000x", out, sizeof out), 0);
  CHECK_EQ(BuildSubscribeUrl(Endpoint{"h", 80, false}, kChan, nullptr, nullptr, 10), 0);
}

TEST(url_respects_buffer_size) {
  char out[200];
  size_t full = BuildSubscribeUrl(Endpoint{"h", 80, false}, kChan, kMid, out, sizeof out);
  CHECK(full > 0);
  // Exactly enough (length + NUL) works; one byte less does not, and leaves "".
  CHECK_EQ(BuildSubscribeUrl(Endpoint{"h", 80, false}, kChan, kMid, out, full + 1), full);
  CHECK_EQ(BuildSubscribeUrl(Endpoint{"h", 80, false}, kChan, kMid, out, full), 0);
  CHECK_STR(out, "");
  CHECK_EQ(BuildSubscribeUrl(Endpoint{"h", 80, false}, kChan, kMid, out, 1), 0);
}

TEST(url_carries_the_device_name) {
  char out[400];
  CHECK(BuildSubscribeUrl(Endpoint{"h", 80, false}, kChan, kMid, out, sizeof out, "isobox-relay-5ccf7f0a1b2c") > 0);
  CHECK(strstr(out, "&mid=17953984070000000000000007&device=isobox-relay-5ccf7f0a1b2c") != nullptr);
  CHECK(BuildSubscribeUrl(Endpoint{"h", 80, false}, kChan, nullptr, out, sizeof out, "") > 0);
  CHECK(strstr(out, "device=") == nullptr);
  // Only what eventrelay accepts and the URL carries unescaped.
  const char* bad[] = {"a b", "a&b", "a=b", "r\xc3\xa9", "a/b", "a%20", "<x>", "0123456789012345678901234567890x"};
  for (const char* d : bad) {
    CHECK(!isobox::IsDeviceId(d));
    CHECK_EQ(BuildSubscribeUrl(Endpoint{"h", 80, false}, kChan, nullptr, out, sizeof out, d), 0);
    CHECK_STR(out, "");
  }
  CHECK(!isobox::IsDeviceId(""));
  CHECK(!isobox::IsDeviceId(nullptr));
  CHECK(isobox::IsDeviceId("A.b_c-9"));
  CHECK(isobox::IsDeviceId("012345678901234567890123456789x"));  // ISOBOX_FW_DEVICE_ID_MAX
}

// The device build's ISOBOX_FW_URL_MAX (384, config.h; the unit tests run
// with less) holds the longest URL of every valid input: checked here with
// a buffer of that size.
TEST(url_longest_fits_the_device_build) {
  std::string host(ISOBOX_FW_HOST_MAX, 'h');
  std::string chan = std::string(32, 'a') + ":" + std::string(32, 'b') + "." + std::string(128, 'c');
  CHECK_EQ(chan.size(), static_cast<size_t>(ISOBOX_FW_CHANNEL_MAX));
  std::string device(ISOBOX_FW_DEVICE_ID_MAX, 'd');
  char out[384 + 1];
  size_t n = BuildSubscribeUrl(Endpoint{host.c_str(), 65535, true}, chan.c_str(), kMid, out, sizeof out, device.c_str());
  size_t frameBytes = strlen("&frameBytes=65535");  // the device build asks for frames; the unit build does not
  CHECK(n > 0);
  CHECK(n + (ISOBOX_FW_FRAME_BYTES > 0 ? 0 : frameBytes) <= 384);
}
