#include <string.h>

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
