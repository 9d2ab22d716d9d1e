#include <string.h>

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
