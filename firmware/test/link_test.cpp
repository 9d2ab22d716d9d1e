#include <string.h>

#include <string>

#include "../core/link.h"
#include "check.h"
#include "fakes.h"

using isobox::Link;

namespace {

const char* kChan = "0123456789abcdef0123456789abcdef.0123456789abcdef0123456789abcdef01234567";
const char* kNext = "fb9f7e13dc3d595c5aefe1a0216c27a2.2887eebc6ae160713a732893462dce9d8e23a7b0";
const std::string kBase = "ws://10.0.0.2:8090/bitrix/subws/?CHANNEL_ID=";

std::string Mid(int n) {
  std::string s = std::to_string(n);
  return "1795398407" + std::string(16 - s.size(), '0') + s;
}

std::string Esp(int mid, const char* device, int value) {
  return "#!NGINXNMS!#{\"id\":" + std::to_string(mid) + ",\"mid\":\"" + Mid(mid) +
         "\",\"channel\":\"-\",\"tag\":\"1\",\"time\":\"x\",\"text\":{\"module_id\":\"application\","
         "\"command\":\"esp\",\"params\":{\"device\":\"" +
         device + "\",\"value\":\"" + std::to_string(value) + "\"}}}#!NGINXNME!#";
}

struct Listener : isobox::LinkListener {
  std::string renewed;
  int commands = 0;
  void OnChannelRenewed(const char* c) override { renewed = c; }
  void OnRelayCommand(const char*, bool, uint8_t) override { ++commands; }
};

struct Rig {
  fake::Clock clock;
  fake::Random rnd;
  fake::Transport net;
  fake::Pins pins;
  isobox::RelayBank relays{pins};
  Listener listener;
  Link link{clock, rnd, net, relays, &listener};

  Rig(bool replay = false) {
    relays.Add("pump", 12, false);
    relays.Add("fan", 13, false);
    relays.Begin();
    pins.writes.clear();
    CHECK(link.Configure("10.0.0.2", 8090, kChan, replay));
  }
  void Frame(const std::string& f) {
    link.OnData(f.data(), f.size());
    link.OnFrameEnd();
  }
  void Connect() {
    link.SetNetwork(true);
    link.Tick();
    link.OnOpen();
  }
};

}  // namespace

TEST(link_refuses_bad_configuration) {
  fake::Clock c;
  fake::Random r;
  fake::Transport t;
  fake::Pins p;
  isobox::RelayBank b(p);
  Link l(c, r, t, b);
  CHECK(!l.Configure("10.0.0.2", 8090, "0123456789abcdef0123456789abcdef", false));  // unsigned
  CHECK(!l.Configure("bad host", 8090, kChan, false));
  CHECK(!l.Configure("10.0.0.2", 0, kChan, false));
  l.SetNetwork(true);
  l.Tick();
  CHECK(t.opened.empty());  // not configured: never connects
}

TEST(link_connects_applies_and_resumes_with_mid) {
  Rig r;
  r.Connect();
  CHECK_EQ(r.net.opened.size(), 1);
  CHECK(r.net.opened.size() == 1 && r.net.opened[0] == kBase + kChan);
  CHECK(r.link.state() == Link::State::kOpen);
  r.Frame(Esp(1, "pump", 1) + Esp(2, "fan", 1) + Esp(3, "fan", 0));
  CHECK(r.relays.state(0));
  CHECK(!r.relays.state(1));
  CHECK_STR(r.link.last_mid(), Mid(3).c_str());
  CHECK_EQ(r.link.stats().applied, 3);
  CHECK_EQ(r.listener.commands, 3);
  // The connection drops: relays keep their state, no pin is touched.
  size_t writes = r.pins.writes.size();
  r.link.OnClose();
  CHECK(r.link.state() == Link::State::kWaiting);
  CHECK(r.relays.state(0));
  CHECK_EQ(r.pins.writes.size(), writes);
  // First retry after 100 ms, with the last mid.
  r.clock.now += 99;
  r.link.Tick();
  CHECK_EQ(r.net.opened.size(), 1);
  r.clock.now += 1;
  r.link.Tick();
  CHECK_EQ(r.net.opened.size(), 2);
  CHECK(r.net.opened.size() == 2 && r.net.opened[1] == kBase + kChan + "&mid=" + Mid(3));
}

TEST(link_drops_replayed_and_duplicate_messages) {
  Rig r;
  r.Connect();
  r.Frame(Esp(5, "pump", 1));
  r.Frame(Esp(4, "pump", 0) + Esp(5, "pump", 0));  // older and same mid: already applied
  CHECK(r.relays.state(0));
  CHECK_EQ(r.link.stats().duplicates, 2);
  r.Frame(Esp(6, "pump", 0));
  CHECK(!r.relays.state(0));
}

TEST(link_counts_unknown_devices_and_malformed_messages) {
  Rig r;
  r.Connect();
  r.Frame(Esp(1, "heater", 1) + "#!NGINXNMS!#{not json#!NGINXNME!#" +
          "#!NGINXNMS!#{\"mid\":\"" + Mid(2) + "\",\"text\":{\"module_id\":\"a\",\"command\":\"esp\",\"params\":{}}}#!NGINXNME!#");
  CHECK_EQ(r.link.stats().unknown_device, 1);
  CHECK_EQ(r.link.stats().rejected, 2);
  CHECK_STR(r.link.last_mid(), Mid(2).c_str());  // a bad command is still received
  CHECK(!r.relays.state(0));
  CHECK(!r.relays.state(1));
}

TEST(link_history_gap_resets_mid_even_when_lower) {
  Rig r;
  r.Connect();
  r.Frame(Esp(50, "pump", 1));
  // A history reset: the new stream's mids are lower than ours... in this
  // contrived test only; eventrelay's epochs grow, but another server may not.
  r.Frame("#!NGINXNMS!#{\"mid\":\"" + Mid(7) +
          "\",\"text\":{\"module_id\":\"isobox\",\"command\":\"history_gap\",\"params\":{\"reason\":\"history_reset\"}}}"
          "#!NGINXNME!#" + Esp(8, "pump", 0));
  CHECK_EQ(r.link.stats().gaps, 1);
  CHECK_STR(r.link.last_mid(), Mid(8).c_str());
  CHECK(!r.relays.state(0));
}

TEST(link_backoff_grows_and_resets_after_stable_connection) {
  Rig r;
  r.link.SetNetwork(true);
  r.net.fail = true;  // the socket cannot even start
  r.link.Tick();
  CHECK_EQ(r.link.wait_ms(), 100);
  r.clock.now += 100;
  r.link.Tick();
  CHECK_EQ(r.link.wait_ms(), 15000);
  r.net.fail = false;
  r.clock.now += 15000;
  r.link.Tick();
  CHECK(r.link.state() == Link::State::kConnecting);
  r.link.OnClose();  // refused (e.g. 400 for a bad signature)
  CHECK_EQ(r.link.wait_ms(), 45000);
  r.clock.now += 45000;
  r.link.Tick();
  r.link.OnOpen();
  r.clock.now += ISOBOX_FW_STABLE_MS;
  r.link.OnClose();
  CHECK_EQ(r.link.wait_ms(), 100);
  CHECK_EQ(r.link.stats().connects, 1);
}

TEST(link_connect_timeout_counts_as_failure) {
  Rig r;
  r.link.SetNetwork(true);
  r.link.Tick();
  CHECK(r.link.state() == Link::State::kConnecting);
  r.clock.now += ISOBOX_FW_CONNECT_TIMEOUT_MS - 1;
  r.link.Tick();
  CHECK(r.link.state() == Link::State::kConnecting);
  r.clock.now += 1;
  r.link.Tick();
  CHECK_EQ(r.net.closes, 1);
  CHECK(r.link.state() == Link::State::kWaiting);
  r.link.OnClose();  // the late close of the abandoned attempt changes nothing
  CHECK_EQ(r.link.wait_ms(), 100);
  r.link.OnOpen();  // nor does a late open
  CHECK(r.link.state() == Link::State::kWaiting);
}

TEST(link_network_down_closes_and_keeps_state) {
  Rig r;
  r.Connect();
  r.Frame(Esp(1, "pump", 1));
  r.link.SetNetwork(false);
  CHECK_EQ(r.net.closes, 1);
  CHECK(r.link.state() == Link::State::kIdle);
  r.clock.now += 3600000;
  r.link.Tick();
  CHECK_EQ(r.net.opened.size(), 1);
  CHECK(r.relays.state(0));
  r.link.SetNetwork(true);
  r.link.Tick();  // reconnects at once when Wi-Fi is back
  CHECK_EQ(r.net.opened.size(), 2);
  CHECK(r.net.opened.size() == 2 && r.net.opened[1] == kBase + kChan + "&mid=" + Mid(1));
}

TEST(link_follows_channel_renewal) {
  Rig r;
  r.Connect();
  std::string expire = std::string(
                           "#!NGINXNMS!#{\"mid\":\"") +
                       Mid(9) +
                       "\",\"text\":{\"module_id\":\"pull\",\"command\":\"channel_expire\",\"params\":{\"action\":"
                       "\"reconnect\",\"channel\":{\"id\":\"x\"},\"new_channel\":{\"id\":\"" +
                       kNext + "\",\"type\":\"shared\"}}}}#!NGINXNME!#";
  r.Frame(expire);
  CHECK_EQ(r.net.closes, 1);
  CHECK(r.listener.renewed == kNext);
  CHECK_STR(r.link.channel(), kNext);
  CHECK(r.link.state() == Link::State::kWaiting);
  CHECK_EQ(r.link.wait_ms(), 0);  // not a failure: no back-off
  r.link.OnClose();               // a late close report changes nothing
  CHECK_EQ(r.link.wait_ms(), 0);
  r.link.Tick();
  CHECK(r.net.opened.size() == 2 && r.net.opened[1] == kBase + kNext + "&mid=" + Mid(9));
  CHECK_EQ(r.link.stats().renewals, 1);
}

TEST(link_replay_from_start_asks_for_all_history) {
  Rig r(true);
  r.Connect();
  CHECK(r.net.opened.size() == 1 && r.net.opened[0] == kBase + kChan + "&mid=00000000000000000000000000");
}

TEST(link_oversized_frame_does_not_break_the_link) {
  Rig r;
  r.Connect();
  std::string big = "#!NGINXNMS!#" + std::string(ISOBOX_FW_MSG_MAX * 3, ' ') + "{}#!NGINXNME!#";
  r.Frame(big + Esp(1, "fan", 1));
  CHECK(r.relays.state(1));
  CHECK_EQ(r.link.frame_stats().oversized, 1);
}

TEST(link_silence_watchdog_reconnects_a_quiet_connection) {
  Rig r;
  r.Connect();
  r.clock.now += ISOBOX_FW_SILENCE_MS - 1;
  r.link.OnAlive();  // a ping from eventrelay
  r.clock.now += ISOBOX_FW_SILENCE_MS - 1;
  r.link.Tick();
  CHECK(r.link.state() == Link::State::kOpen);
  r.Frame(Esp(1, "pump", 1));  // a message counts as well
  r.clock.now += ISOBOX_FW_SILENCE_MS - 1;
  r.link.Tick();
  CHECK(r.link.state() == Link::State::kOpen);
  r.clock.now += 1;
  r.link.Tick();
  CHECK(r.link.state() == Link::State::kWaiting);
  CHECK_EQ(r.net.closes, 1);
  CHECK_EQ(r.link.stats().silences, 1);
  CHECK_EQ(r.link.wait_ms(), 100);  // a failure: the back-off's first step
  CHECK(r.relays.state(0));         // relays keep their state
  r.clock.now += 100;
  r.link.Tick();
  CHECK(r.net.opened.size() == 2 && r.net.opened[1] == kBase + kChan + "&mid=" + Mid(1));
}

TEST(link_follows_a_repeated_renewal_with_an_old_mid) {
  Rig r;
  r.Connect();
  r.Frame(Esp(20, "pump", 1));
  // eventrelay repeats a remembered channel_expire with the mid the device
  // resumes from: not a duplicate, and the device keeps its own mid.
  r.Frame("#!NGINXNMS!#{\"mid\":\"" + Mid(20) +
          "\",\"text\":{\"module_id\":\"pull\",\"command\":\"channel_expire\",\"params\":{\"action\":\"reconnect\","
          "\"new_channel\":{\"id\":\"" + kNext + "\"}}}}#!NGINXNME!#");
  CHECK_STR(r.link.channel(), kNext);
  CHECK_EQ(r.link.stats().duplicates, 0);
  CHECK_STR(r.link.last_mid(), Mid(20).c_str());
  r.link.Tick();
  CHECK(r.net.opened.size() == 2 && r.net.opened[1] == kBase + kNext + "&mid=" + Mid(20));
}

TEST(link_secure_uses_wss_and_reports_a_refused_key) {
  fake::Clock clock;
  fake::Random rnd;
  fake::Transport net;
  fake::Pins pins;
  isobox::RelayBank relays{pins};
  Link link{clock, rnd, net, relays};
  relays.Add("pump", 12, false);
  relays.Begin();
  CHECK(link.Configure("10.0.0.2", 8090, kChan, false, true));
  CHECK(link.secure());
  link.SetNetwork(true);
  link.Tick();
  CHECK_EQ(net.opened.size(), 1);
  CHECK_STR(net.opened[0], "wss://10.0.0.2:8090/bitrix/subws/?CHANNEL_ID=" + std::string(kChan));
  // eventrelay answers with another key: the transport says so, then closes.
  link.OnKeyRefused();
  link.OnClose();
  CHECK(link.key_refused());
  CHECK_EQ(link.stats().key_refusals, 1);
  CHECK(link.state() == Link::State::kWaiting);
  // A refusal outside an attempt (a late event) changes nothing.
  link.OnKeyRefused();
  CHECK_EQ(link.stats().key_refusals, 1);
  // It keeps retrying on the back-off (the key may come back), and the
  // first connection that opens clears the flag.
  clock.now += link.wait_ms();
  link.Tick();
  CHECK_EQ(net.opened.size(), 2);
  CHECK(link.key_refused());
  link.OnOpen();
  CHECK(!link.key_refused());
  CHECK_EQ(link.stats().key_refusals, 1);
}

// The board's name goes into every subscribe URL; a bad one is refused and
// the old one kept.
TEST(link_sends_the_device_name) {
  Rig r;
  CHECK(r.link.SetDeviceId("isobox-relay-5ccf7f0a1b2c"));
  CHECK(!r.link.SetDeviceId("bad name"));
  CHECK_STR(r.link.device_id(), "isobox-relay-5ccf7f0a1b2c");
  r.Connect();
  CHECK_EQ(r.net.opened.size(), 1u);
  CHECK_STR(r.net.opened[0].c_str(), (kBase + kChan + "&device=isobox-relay-5ccf7f0a1b2c").c_str());
  r.Frame(Esp(7, "pump", 1));
  r.link.OnClose();
  r.clock.now += 60000;
  r.link.Tick();
  CHECK_EQ(r.net.opened.size(), 2u);
  CHECK_STR(r.net.opened[1].c_str(), (kBase + kChan + "&mid=" + Mid(7) + "&device=isobox-relay-5ccf7f0a1b2c").c_str());
  CHECK(r.link.SetDeviceId(nullptr));
  CHECK_STR(r.link.device_id(), "");
}

// Configure refuses an address whose URL would not fit once a mid and the
// name are added (before, it checked without them and such a board failed
// to build its URL on every attempt, never connecting). Exact at the edge.
TEST(link_refuses_a_configuration_whose_longest_url_does_not_fit) {
  fake::Clock c;
  fake::Random rnd;
  fake::Transport t;
  fake::Pins p;
  isobox::RelayBank b(p);
  Link l(c, rnd, t, b);
  const char* name = "isobox-relay-5ccf7f0a1b2c";
  // Everything but the host, with the longest mid.
  size_t fixed = strlen("ws://:8090/bitrix/subws/?CHANNEL_ID=") + strlen(kChan) + strlen("&mid=") + isobox::kMidLen;
  std::string host(ISOBOX_FW_URL_MAX - fixed + 1, 'h');
  CHECK(host.size() <= ISOBOX_FW_HOST_MAX);
  CHECK(!l.Configure(host.c_str(), 8090, kChan, false));  // one byte over
  host.pop_back();
  CHECK(l.Configure(host.c_str(), 8090, kChan, false));  // exactly full
  CHECK(!l.SetDeviceId(name));                           // no room for it
  CHECK_STR(l.device_id(), "");
  host.resize(host.size() - strlen("&device=") - strlen(name));
  CHECK(l.Configure(host.c_str(), 8090, kChan, false));
  CHECK(l.SetDeviceId(name));  // exactly full again
  std::string longer = host + "h";
  CHECK(!l.Configure(longer.c_str(), 8090, kChan, false));  // the name counts too
  l.SetNetwork(true);
  l.Tick();
  CHECK_EQ(t.opened.size(), 1u);
  CHECK_EQ(t.opened[0].size(), ISOBOX_FW_URL_MAX - strlen("&mid=") - isobox::kMidLen);
  CHECK(t.opened[0].find(std::string("&device=") + name) != std::string::npos);
}
