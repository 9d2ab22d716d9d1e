#include <string.h>

#include "../core/pin.h"
#include "../core/settings.h"
#include "check.h"
#include "fakes.h"

namespace {
isobox::Settings Sample() {
  isobox::Settings s;
  memset(&s, 0, sizeof s);
  strcpy(s.ssid, "lan");
  strcpy(s.pass, "secret-pass");
  strcpy(s.host, "192.168.1.10");
  s.port = 8090;
  strcpy(s.channel, "0123456789abcdef0123456789abcdef.0123456789abcdef0123456789abcdef01234567");
  s.relay_count = 1;
  strcpy(s.relays[0].name, "pump");
  s.relays[0].pin = 12;
  s.relays[0].activeLow = true;
  return s;
}
}  // namespace

TEST(settings_blank_flash_is_not_configured) {
  fake::Storage st;
  isobox::Settings s;
  CHECK(!isobox::LoadSettings(st, &s));
  CHECK_STR(s.ssid, "");
  fake::Storage tiny;
  tiny.mem.resize(8);
  CHECK(!isobox::LoadSettings(tiny, &s));
  CHECK_EQ(isobox::SaveIfChanged(tiny, Sample()), -1);
}

TEST(settings_round_trip_and_write_only_on_change) {
  fake::Storage st;
  isobox::Settings s = Sample();
  CHECK_EQ(isobox::SaveIfChanged(st, s), 1);
  CHECK_EQ(st.writes, 1);
  isobox::Settings back;
  CHECK(isobox::LoadSettings(st, &back));
  CHECK(memcmp(&back, &s, sizeof s) == 0);
  // Every later boot saves the same settings: no flash write.
  for (int boot = 0; boot < 5; ++boot) CHECK_EQ(isobox::SaveIfChanged(st, back), 0);
  CHECK_EQ(st.writes, 1);
  strcpy(back.channel, "fedcba9876543210fedcba9876543210.0123456789abcdef0123456789abcdef01234567");
  CHECK_EQ(isobox::SaveIfChanged(st, back), 1);
  CHECK_EQ(st.writes, 2);
  st.fail = true;
  back.port = 8091;
  CHECK_EQ(isobox::SaveIfChanged(st, back), -1);
}

TEST(settings_corruption_is_detected) {
  fake::Storage st;
  isobox::Settings s = Sample();
  CHECK_EQ(isobox::SaveIfChanged(st, s), 1);
  isobox::Settings back;
  for (size_t at : {size_t(0), size_t(5), size_t(20), isobox::kSettingsImageSize - 1}) {
    fake::Storage copy = st;
    copy.mem[at] ^= 0x40;
    CHECK(!isobox::LoadSettings(copy, &back));
    CHECK_STR(back.host, "");
  }
}

TEST(settings_relay_list) {
  isobox::Settings s;
  memset(&s, 0, sizeof s);
  CHECK(isobox::ParseRelayList("pump:12,fan:13:low", &s));
  CHECK_EQ(s.relay_count, 2);
  CHECK_STR(s.relays[0].name, "pump");
  CHECK_EQ(s.relays[0].pin, 12);
  CHECK(!s.relays[0].activeLow);
  CHECK_STR(s.relays[1].name, "fan");
  CHECK(s.relays[1].activeLow);
  CHECK(isobox::ParseRelayList(":12", &s));
  CHECK_EQ(s.relay_count, 1);
  CHECK_STR(s.relays[0].name, "");
  const char* bad[] = {"", "pump", "pump:", "pump:17", "pump:1234", "pump:12,", "pump:12,fan:12", "pump:12,pump:13",
                       "p mp:12", "pump:12:high", "a:1,b:2,c:3,d:4", "averylongname:1", ",pump:1"};
  for (const char* b : bad) {
    if (isobox::ParseRelayList(b, &s)) fprintf(stderr, "  accepted \"%s\"\n", b);
    CHECK(!isobox::ParseRelayList(b, &s));
    CHECK_EQ(s.relay_count, 0);
  }
}

TEST(settings_equal_values_give_equal_images) {
  fake::Storage st;
  isobox::Settings a = Sample();
  CHECK_EQ(isobox::SaveIfChanged(st, a), 1);
  // The same values in memory holding other leftovers after the NULs.
  isobox::Settings b;
  memset(&b, 0xAB, sizeof b);
  strcpy(b.ssid, "lan");
  strcpy(b.pass, "secret-pass");
  strcpy(b.host, "192.168.1.10");
  b.port = 8090;
  strcpy(b.channel, a.channel);
  b.replay_from_start = 0;
  b.relay_count = 1;
  strcpy(b.relays[0].name, "pump");
  b.relays[0].pin = 12;
  b.relays[0].activeLow = true;
  b.relays[0].onAtBoot = false;
  CHECK_EQ(isobox::SaveIfChanged(st, b), 0);
  CHECK_EQ(st.writes, 1);
}

TEST(settings_power_on_state_and_version_1_images) {
  isobox::Settings s = Sample();
  CHECK(isobox::ParseRelayList("pump:12:on,fan:13:low:on,light:14", &s));
  CHECK(s.relays[0].onAtBoot && !s.relays[0].activeLow);
  CHECK(s.relays[1].onAtBoot && s.relays[1].activeLow);
  CHECK(!s.relays[2].onAtBoot);
  CHECK(!isobox::ParseRelayList("pump:12:on:low", &s));  // order is fixed: low, then on
  CHECK(isobox::ParseRelayList("pump:12:on,fan:13:low:on,light:14", &s));
  fake::Storage st;
  CHECK_EQ(isobox::SaveIfChanged(st, s), 1);
  isobox::Settings back;
  CHECK(isobox::LoadSettings(st, &back));
  CHECK(back.relays[0].onAtBoot && back.relays[1].onAtBoot && !back.relays[2].onAtBoot);

  // A board updated from version 1 (no power-on state) keeps its settings.
  struct V1 {
    char name[ISOBOX_FW_NAME_MAX + 1];
    uint8_t pin;
    uint8_t low;
  };
  isobox::Settings old = Sample();
  uint8_t img[isobox::kSettingsImageSize] = {};
  size_t at = offsetof(isobox::Settings, relays);
  size_t size = (at + ISOBOX_FW_RELAYS_MAX * sizeof(V1) + alignof(isobox::Settings) - 1) /
                alignof(isobox::Settings) * alignof(isobox::Settings);
  memcpy(img, "ISB1", 4);
  img[4] = 1;
  img[6] = static_cast<uint8_t>(size & 0xFF);
  img[7] = static_cast<uint8_t>(size >> 8);
  memcpy(img + 8, &old, at);
  V1 r{};
  strcpy(r.name, "pump");
  r.pin = 12;
  r.low = 1;
  memcpy(img + 8 + at, &r, sizeof r);
  uint32_t crc = isobox::Crc32(img, 8 + size);
  for (int i = 0; i < 4; ++i) img[8 + size + i] = static_cast<uint8_t>(crc >> (8 * i));
  isobox::Settings got;
  CHECK(isobox::DecodeSettings(img, &got));
  CHECK_STR(got.ssid, "lan");
  CHECK_STR(got.channel, old.channel);
  CHECK_EQ(got.relay_count, 1);
  CHECK_STR(got.relays[0].name, "pump");
  CHECK_EQ(got.relays[0].pin, 12);
  CHECK(got.relays[0].activeLow && !got.relays[0].onAtBoot);
  img[8 + at + offsetof(V1, low)] = 2;  // not a bool: refused even with a matching CRC
  crc = isobox::Crc32(img, 8 + size);
  for (int i = 0; i < 4; ++i) img[8 + size + i] = static_cast<uint8_t>(crc >> (8 * i));
  CHECK(!isobox::DecodeSettings(img, &got));
}

TEST(settings_version_3_keeps_the_pin_and_version_2_reads_as_plain_ws) {
  isobox::Settings s = Sample();
  s.tls = isobox::kPinnedWss;
  s.pin_len = 91;
  for (int i = 0; i < 91; ++i) s.pin[i] = static_cast<uint8_t>(i + 1);
  fake::Storage st;
  CHECK_EQ(isobox::SaveIfChanged(st, s), 1);
  isobox::Settings back;
  CHECK(isobox::LoadSettings(st, &back));
  CHECK_EQ(back.tls, isobox::kPinnedWss);
  CHECK_EQ(back.pin_len, 91);
  CHECK(memcmp(back.pin, s.pin, 91) == 0);
  CHECK_EQ(back.pin[91], 0);
  // Another pin is a change; the same one is not.
  CHECK_EQ(isobox::SaveIfChanged(st, back), 0);
  back.pin[0] ^= 1;
  CHECK_EQ(isobox::SaveIfChanged(st, back), 1);
  // Bytes of the pin beyond pin_len do not make a different image.
  isobox::Settings junk = back;
  junk.pin[200] = 0x55;
  CHECK_EQ(isobox::SaveIfChanged(st, junk), 0);

  // A version 2 image (pre-TLS firmware): its bytes are the fields up to
  // the relays; it reads as ws:// with no pin.
  isobox::Settings old = Sample();
  uint8_t img[isobox::kSettingsImageSize] = {};
  size_t at = offsetof(isobox::Settings, tls);
  size_t size = (at + 1) / 2 * 2;
  memcpy(img, "ISB1", 4);
  img[4] = 2;
  img[6] = static_cast<uint8_t>(size & 0xFF);
  img[7] = static_cast<uint8_t>(size >> 8);
  memcpy(img + 8, &old, at);
  uint32_t crc = isobox::Crc32(img, 8 + size);
  for (int i = 0; i < 4; ++i) img[8 + size + i] = static_cast<uint8_t>(crc >> (8 * i));
  isobox::Settings got;
  memset(&got, 0x77, sizeof got);
  CHECK(isobox::DecodeSettings(img, &got));
  CHECK_STR(got.channel, old.channel);
  CHECK_STR(got.relays[0].name, "pump");
  CHECK_EQ(got.tls, isobox::kPlainWs);
  CHECK_EQ(got.pin_len, 0);
  char why[isobox::kPinErrorTextSize];
  CHECK(isobox::CheckTransport(got, why, sizeof why) == nullptr);
  // Version 2 with the size of version 3 (or the reverse) is refused.
  img[4] = 3;
  crc = isobox::Crc32(img, 8 + size);
  for (int i = 0; i < 4; ++i) img[8 + size + i] = static_cast<uint8_t>(crc >> (8 * i));
  CHECK(!isobox::DecodeSettings(img, &got));

  // A version 3 image with an impossible transport or pin length is refused.
  for (int field = 0; field < 2; ++field) {
    uint8_t v3[isobox::kSettingsImageSize];
    isobox::EncodeSettings(s, v3);
    if (field == 0) v3[8 + offsetof(isobox::Settings, tls)] = 2;
    if (field == 1) {
      uint16_t big = ISOBOX_FW_PIN_MAX + 1;
      memcpy(v3 + 8 + offsetof(isobox::Settings, pin_len), &big, 2);
    }
    uint32_t c = isobox::Crc32(v3, 8 + sizeof(isobox::Settings));
    for (int i = 0; i < 4; ++i) v3[8 + sizeof(isobox::Settings) + i] = static_cast<uint8_t>(c >> (8 * i));
    CHECK(!isobox::DecodeSettings(v3, &got));
  }
}
