#include <string>

#include "../core/device.h"
#include "../core/url.h"
#include "check.h"
#include "fakes.h"

namespace {

struct Rtc : isobox::Scratch {
  std::string mem;  // empty: garbage / nothing kept
  bool Read(uint8_t* out, size_t n) override {
    if (mem.size() < n) return false;
    memcpy(out, mem.data(), n);
    return true;
  }
  bool Write(const uint8_t* data, size_t n) override {
    mem.assign(reinterpret_cast<const char*>(data), n);
    return true;
  }
};

}  // namespace

TEST(device_secret_is_made_once_and_kept) {
  fake::Storage st;
  fake::Random rnd;
  rnd.values = {0x11223344, 0x55667788, 0x99aabbcc};
  uint8_t a[isobox::kSecretLen], b[isobox::kSecretLen];
  bool created = false;
  CHECK(isobox::LoadOrCreateSecret(st, 1000, rnd, a, &created));
  CHECK(created);
  CHECK_EQ(st.writes, 1);
  CHECK_EQ(a[0], 0x44);
  CHECK_EQ(a[9], 0xbb);
  rnd.values = {1, 2, 3};
  rnd.i = 0;
  CHECK(isobox::LoadOrCreateSecret(st, 1000, rnd, b, &created));
  CHECK(!created);  // the next boot only reads
  CHECK_EQ(st.writes, 1);
  CHECK(memcmp(a, b, sizeof a) == 0);
  st.mem[1005] ^= 1;  // corrupt: a new one, written
  CHECK(isobox::LoadOrCreateSecret(st, 1000, rnd, b, &created));
  CHECK(created);
  CHECK_EQ(st.writes, 2);
  CHECK(memcmp(a, b, sizeof a) != 0);
  fake::Storage tiny;
  tiny.mem.resize(16);
  CHECK(!isobox::LoadOrCreateSecret(tiny, 0, rnd, b, &created));
}

TEST(device_ap_password_per_board) {
  uint8_t s1[isobox::kSecretLen] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  uint8_t s2[isobox::kSecretLen] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11};
  uint8_t s3[isobox::kSecretLen] = {2, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  char p1[13], p2[13], p3[13], p4[13];
  isobox::ApPassword(0xABCDEF, s1, p1);
  isobox::ApPassword(0xABCDEF, s2, p2);
  isobox::ApPassword(0xABCDEF, s3, p3);
  isobox::ApPassword(0xABCDEE, s1, p4);
  CHECK_EQ(strlen(p1), 12);
  CHECK_STR(p1, p2);  // the 10th byte is beyond the 60 bits used
  CHECK(std::string(p1) != p3);
  CHECK(std::string(p1) != p4);  // another chip, same secret: another password
  for (const char* c = p1; *c; ++c) CHECK(strchr("23456789abcdefghijkmnpqrstuvwxyz", *c) != nullptr);
  char again[13];
  isobox::ApPassword(0xABCDEF, s1, again);
  CHECK_STR(again, p1);
}

TEST(device_name_is_the_station_mac) {
  const uint8_t mac[6] = {0x5c, 0xcf, 0x7f, 0x0a, 0x1b, 0x2c};
  char id[isobox::kDeviceIdSize];
  memset(id, 'x', sizeof id);
  CHECK(isobox::DeviceId(mac, id));
  CHECK_STR(id, "isobox-relay-5ccf7f0a1b2c");
  CHECK_EQ(strlen(id) + 1, isobox::kDeviceIdSize);
  CHECK(isobox::IsDeviceId(id));
  const uint8_t ff[6] = {0xff, 0xff, 0xff, 0x00, 0x00, 0x01};
  CHECK(isobox::DeviceId(ff, id));
  CHECK_STR(id, "isobox-relay-ffffff000001");
  const uint8_t zero[6] = {}, ones[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  CHECK(!isobox::DeviceId(zero, id));  // not read: no name rather than one shared by all
  CHECK_STR(id, "");
  CHECK(!isobox::DeviceId(ones, id));
  CHECK_STR(id, "");
}

TEST(device_button_long_press_fires_once) {
  isobox::ButtonHold b;
  CHECK(!b.Update(true, 100));
  CHECK(!b.Update(true, 100 + ISOBOX_FW_BUTTON_HOLD_MS - 1));
  CHECK(b.Update(true, 100 + ISOBOX_FW_BUTTON_HOLD_MS));
  CHECK(!b.Update(true, 100 + 3 * ISOBOX_FW_BUTTON_HOLD_MS));  // still held: not again
  CHECK(!b.Update(false, 200000));
  CHECK(!b.Update(true, 200001));  // a short press does nothing
  CHECK(!b.Update(false, 200002));
  CHECK(!b.Update(true, 300000));
  CHECK(b.Update(true, 300000 + ISOBOX_FW_BUTTON_HOLD_MS));
}

TEST(device_boot_loop_guard) {
  Rtc rtc;
  {
    isobox::BootGuard g(rtc);
    CHECK(!g.Boot(true));  // power on
    CHECK_EQ(g.unstable_boots(), 1);
  }
  for (uint32_t i = 2; i <= ISOBOX_FW_BOOT_LOOP_MAX; ++i) {
    isobox::BootGuard g(rtc);
    CHECK(!g.Boot(false));  // crashed (watchdog, exception) before running a minute
    CHECK_EQ(g.unstable_boots(), i);
  }
  isobox::BootGuard safe(rtc);
  CHECK(safe.Boot(false));  // one more: safe mode
  safe.Tick(ISOBOX_FW_STABLE_BOOT_MS - 1);
  CHECK_EQ(safe.unstable_boots(), ISOBOX_FW_BOOT_LOOP_MAX + 1);
  safe.Tick(ISOBOX_FW_STABLE_BOOT_MS);  // safe mode ran long enough: cleared
  isobox::BootGuard next(rtc);
  CHECK(!next.Boot(false));
  CHECK_EQ(next.unstable_boots(), 1);
  // Garbage in RTC memory (no magic) counts as nothing.
  rtc.mem = std::string(12, '\x5a');
  isobox::BootGuard g2(rtc);
  CHECK(!g2.Boot(false));
  CHECK_EQ(g2.unstable_boots(), 1);
  // A power cut in a loop resets the count.
  for (int i = 0; i < 10; ++i) {
    isobox::BootGuard g(rtc);
    CHECK(!g.Boot(true));
  }
}

TEST(device_status_page_escapes_and_bounds) {
  isobox::StatusView v{};
  v.firmware = "0.2.0";
  v.state = "subscribed";
  v.mid = "17953984070000000000000009";
  v.last_device = "<script>";
  v.last_on = true;
  v.uptime_s = 3601;
  v.reset_reason = "Power On";
  v.free_heap = 31000;
  v.connects = 2;
  v.relay_count = 2;
  v.relay_names[0] = "pump";
  v.relay_names[1] = "";
  v.relay_on[0] = true;
  v.relay_on[1] = false;
  char out[2048];
  size_t n = isobox::RenderStatus(v, out, sizeof out);
  std::string s(out, n);
  CHECK(n > 0 && n == strlen(out));
  CHECK(s.find("<script>") == std::string::npos);
  CHECK(s.find("&lt;script&gt; on") != std::string::npos);
  CHECK(s.find("<tr><th>relay pump<td>on") != std::string::npos);
  CHECK(s.find("<tr><th>relay (unnamed)<td>off") != std::string::npos);
  CHECK(s.find("<tr><th>uptime, s<td>3601") != std::string::npos);
  CHECK(s.find("<tr><th>last mid<td>17953984070000000000000009") != std::string::npos);
  CHECK(s.find("device name") == std::string::npos);  // none given
  v.device = "isobox-relay-5ccf7f0a1b2c";
  n = isobox::RenderStatus(v, out, sizeof out);
  s.assign(out, n);
  CHECK(s.find("<tr><th>device name<td>isobox-relay-5ccf7f0a1b2c") != std::string::npos);
  char small[100];
  CHECK_EQ(isobox::RenderStatus(v, small, sizeof small), 0);
  CHECK_STR(small, "");
  v.last_device = nullptr;
  v.mid = "";
  n = isobox::RenderStatus(v, out, sizeof out);
  s.assign(out, n);
  CHECK(s.find("<tr><th>last command<td>-") != std::string::npos);
  CHECK(s.find("<tr><th>last mid<td>-") != std::string::npos);
  CHECK(s.find("<tr><th>transport<td>ws:// (unencrypted, chosen on the setup page)") != std::string::npos);
  CHECK(s.find("eventrelay key") == std::string::npos);
  CHECK(s.find("TLS") == std::string::npos);
}

TEST(device_status_page_shows_the_pin_and_a_refused_key) {
  isobox::StatusView v{};
  v.firmware = "0.3.0";
  v.state = "waiting to reconnect";
  v.reset_reason = "Power On";
  v.secure = true;
  v.pin = "sha256//ZB0eFfjoQUJ0WmaSbd5MjJ/EmBVcs5m5uCTVBisaJwo=";
  v.key_kind = "EC P-256";
  v.key_refusals = 3;
  v.key_refused = true;
  // Every field at once still fits the sketch's 2 KiB page buffer.
  v.mid = "17953984070000000000000009";
  v.last_device = "averylongrelayname_0123456789ab";
  v.relay_count = ISOBOX_FW_RELAYS_MAX;
  for (uint8_t i = 0; i < v.relay_count; ++i) v.relay_names[i] = "averylongrelayname_0123456789ab";
  v.connects = v.renewals = v.gaps = v.rejected = v.silences = 4294967295u;
  v.tls_rx_bytes = 16384;
  v.tls_too_large = 4294967295u;
  char out[2048];
  size_t n = isobox::RenderStatus(v, out, sizeof out);
  CHECK(n > 0);
  std::string s(out, n);
  CHECK(s.find("<tr><th>TLS receive buffer, bytes<td>16384") != std::string::npos);
  CHECK(s.find("<tr><th>TLS records too large for 4 KiB<td>4294967295") != std::string::npos);
  CHECK(s.find("<tr><th>transport<td>wss:// (TLS, pinned key)") != std::string::npos);
  CHECK(s.find("<tr><th>eventrelay key (pin)<td>EC P-256 sha256//ZB0eFfjoQUJ0WmaSbd5MjJ/EmBVcs5m5uCTVBisaJwo=") !=
        std::string::npos);
  CHECK(s.find("<tr><th>TLS key refusals<td>3") != std::string::npos);
  CHECK(s.find("REFUSED: eventrelay&#39;s key is not the pinned one") != std::string::npos);
  v.key_refused = false;
  v.tls_too_large = 0;
  n = isobox::RenderStatus(v, out, sizeof out);
  CHECK(std::string(out, n).find("REFUSED") == std::string::npos);
  CHECK(std::string(out, n).find("too large") == std::string::npos);
}

TEST(device_led_lit_subscribed_blinking_on_a_refused_key) {
  for (uint32_t t : {0u, 150u, 12345u}) {
    CHECK(isobox::StatusLedLit(true, false, t));
    CHECK(isobox::StatusLedLit(true, true, t));  // subscribed wins: the key was accepted
    CHECK(!isobox::StatusLedLit(false, false, t));
  }
  // 5 Hz: 100 ms on, 100 ms off, across the 32-bit wrap of millis().
  CHECK(isobox::StatusLedLit(false, true, 0));
  CHECK(isobox::StatusLedLit(false, true, 99));
  CHECK(!isobox::StatusLedLit(false, true, 100));
  CHECK(!isobox::StatusLedLit(false, true, 199));
  CHECK(isobox::StatusLedLit(false, true, 200));
  int lit = 0;
  for (uint32_t t = 0; t < 1000; t += 10) lit += isobox::StatusLedLit(false, true, t) ? 1 : 0;
  CHECK_EQ(lit, 50);
}
