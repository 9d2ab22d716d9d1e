// The adapter between Link and the WebSocket library (core/ws_transport.h)
// against the host reproduction of the library's bookkeeping
// (test/ws_host) over a scripted socket: the peer's bytes are real HTTP
// and RFC 6455 frames, the clock is the test's.
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <string>

#include "../core/link.h"
#include "../core/ws_transport.h"
#include "check.h"
#include "fakes.h"

namespace {

fake::Clock* g_clock = nullptr;

const char* kChan = "0123456789abcdef0123456789abcdef.0123456789abcdef0123456789abcdef01234567";
const char* kNext = "fb9f7e13dc3d595c5aefe1a0216c27a2.2887eebc6ae160713a732893462dce9d8e23a7b0";

// What the scripted peer does with the next connection attempts.
struct Peer {
  bool accept = true;  // the TCP connect succeeds
  enum Handshake { k101, k400, kSilent, kBadAccept } handshake = k101;
  bool up = false;        // a TCP connection is established
  int connects = 0;       // TCP connects tried
  std::string to_client;  // bytes waiting for the client
  std::string last_request;
  int pings = 0;          // ping frames received
};

std::string AcceptFor(const std::string& key) {
  std::string s = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  uint8_t d[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  unsigned char out[64];
  int n = EVP_EncodeBlock(out, d, sizeof d);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

// An unmasked server frame.
std::string Frame(uint8_t op, const std::string& payload, bool fin = true) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | op));
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(payload.size()));
  } else {
    f.push_back(126);
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size() & 0xFF));
  }
  return f + payload;
}

struct ScriptedNet : HostNet {
  Peer& p;
  bool mine = false;  // this socket is the peer's current connection
  explicit ScriptedNet(Peer& peer) : p(peer) {}
  bool connect(const char*, uint16_t) override {
    ++p.connects;
    if (!p.accept) return false;
    p.up = true;
    p.to_client.clear();
    mine = true;
    return true;
  }
  bool connected() override { return mine && p.up; }
  size_t read(uint8_t* out, size_t n) override {
    if (!connected()) return 0;
    size_t k = p.to_client.size() < n ? p.to_client.size() : n;
    memcpy(out, p.to_client.data(), k);
    p.to_client.erase(0, k);
    return k;
  }
  size_t write(const uint8_t* data, size_t n) override {
    if (!connected()) return 0;
    std::string s(reinterpret_cast<const char*>(data), n);
    if (s.compare(0, 4, "GET ") == 0) {
      p.last_request = s;
      size_t k = s.find("Sec-WebSocket-Key: ");
      std::string key = s.substr(k + 19, s.find("\r\n", k) - k - 19);
      switch (p.handshake) {
        case Peer::k101:
        case Peer::kBadAccept:
          p.to_client += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: " +
                         (p.handshake == Peer::k101 ? AcceptFor(key) : AcceptFor("x")) + "\r\n\r\n";
          break;
        case Peer::k400:
          p.to_client += "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
          break;
        case Peer::kSilent:
          break;
      }
    } else if (n >= 2 && (data[0] & 0x0F) == 0x9) {
      ++p.pings;
    }
    return n;
  }
  void stop() override {
    if (mine) p.up = false;
    mine = false;
  }
};

std::string Esp(int mid, const char* device, int value) {
  std::string m = std::to_string(mid);
  return "#!NGINXNMS!#{\"mid\":\"1795398407" + std::string(16 - m.size(), '0') + m +
         "\",\"text\":{\"module_id\":\"application\",\"command\":\"esp\",\"params\":{\"device\":\"" + device +
         "\",\"value\":\"" + std::to_string(value) + "\"}}}#!NGINXNME!#";
}

using Ws = isobox::WsTransport<WebSocketsClient>;
using isobox::Link;

// The shim as it was (arduino/isobox_relay/esp8266_ports.h before this
// change): the library's reconnect "disabled" before begin().
struct OldTransport : isobox::Transport {
  WebSocketsClient ws;
  Link* link = nullptr;
  bool active = false;
  void Attach(Link* l) {
    link = l;
    ws.onEvent([this](WStype_t type, uint8_t*, size_t) {
      if (!active) return;
      if (type == WStype_CONNECTED) link->OnOpen();
      if (type == WStype_DISCONNECTED) {
        active = false;
        link->OnClose();
      }
    });
  }
  bool Open(const char* url) override {
    isobox::WsTarget t;
    if (!isobox::SplitWsUrl(url, &t)) return false;
    ws.setReconnectInterval(0xFFFFFFFFul);
    ws.begin(t.host, t.port, t.path, "");
    active = true;
    return true;
  }
  void Close() override { active = false; }
  void Loop() {
    if (active) ws.loop();
  }
};

template <class T>
struct Rig {
  fake::Clock clock;
  fake::Random rnd;
  fake::Pins pins;
  isobox::RelayBank relays{pins};
  Peer peer;
  T net;
  Link link{clock, rnd, net, relays};

  Rig() {
    g_clock = &clock;
    clock.now = 1000;  // a board that booted a second ago
    WebSocketsClient::live_sockets = 0;
    WebSocketsClient::net_factory = [this]() -> HostNet* { return new ScriptedNet(peer); };
    relays.Add("pump", 12, false);
    relays.Begin();
    net.Attach(&link);
    CHECK(link.Configure("10.0.0.2", 8090, kChan, false));
    link.SetNetwork(true);
  }
  ~Rig() {
    WebSocketsClient::net_factory = nullptr;
    g_clock = nullptr;
  }
  // One pass of the sketch's loop(): the transport, then the link.
  void Pass() {
    net.Loop();
    link.Tick();
  }
  // Passes every step ms until ms have gone by.
  void Run(uint32_t ms, uint32_t step = 10) {
    for (uint32_t t = 0; t < ms; t += step) {
      Pass();
      clock.now += step;
    }
  }
};

}  // namespace

unsigned long millis() { return g_clock != nullptr ? g_clock->now : 0; }

// The finding: with the old ordering the library never makes its first
// connection attempt, across many of the link's retries, while the peer
// would accept it.
TEST(ws_old_shim_ordering_never_connects) {
  Rig<OldTransport> r;
  r.Run(3600000, 250);  // an hour of loop()
  CHECK_EQ(r.peer.connects, 0);
  CHECK_EQ(r.link.stats().connects, 0);
  CHECK(r.link.state() != Link::State::kOpen);
  CHECK(r.net.ws.lastConnectionFail() == 0);  // begin() zeroed it, nothing set it since
}

TEST(ws_connects_on_the_first_loop_and_applies_commands) {
  Rig<Ws> r;
  r.Pass();  // Tick opens
  CHECK(r.net.phase() == Ws::Phase::kArmed);
  r.Pass();  // loop() connects and sends the handshake
  CHECK_EQ(r.peer.connects, 1);
  CHECK(r.peer.last_request.find("GET /bitrix/subws/?CHANNEL_ID=" + std::string(kChan) + " HTTP/1.1\r\n") == 0);
  CHECK(r.peer.last_request.find("Sec-WebSocket-Protocol") == std::string::npos);
  CHECK(r.net.client().reconnectInterval() == Ws::kNever);
  r.Pass();  // loop() reads the 101
  CHECK(r.link.state() == Link::State::kOpen);
  r.peer.to_client += Frame(0x1, Esp(1, "pump", 1));
  r.Pass();
  CHECK(r.relays.state(0));
  // A fragmented frame: start, continuation, fin.
  std::string m = Esp(2, "pump", 0);
  r.peer.to_client += Frame(0x1, m.substr(0, 10), false) + Frame(0x0, m.substr(10, 20), false) +
                      Frame(0x0, m.substr(30), true);
  r.Pass();
  CHECK(!r.relays.state(0));
  CHECK_EQ(r.link.stats().applied, 2);
  CHECK_EQ(WebSocketsClient::live_sockets, 1);
}

TEST(ws_failed_connect_reaches_the_link_and_the_library_never_retries_itself) {
  Rig<Ws> r;
  r.peer.accept = false;
  r.Pass();
  r.Pass();  // attempt 1 fails: no event from the library
  CHECK_EQ(r.peer.connects, 1);
  CHECK(r.link.state() == Link::State::kConnecting);
  r.Pass();  // the next loop() cleans the dead socket up: DISCONNECTED
  CHECK(r.link.state() == Link::State::kWaiting);
  CHECK_EQ(r.link.wait_ms(), 100);
  CHECK_EQ(WebSocketsClient::live_sockets, 0);
  // The core's back-off, not the library's 500 ms interval, decides: the
  // second failure waits 15 s and nothing connects meanwhile.
  r.Run(150);
  CHECK_EQ(r.peer.connects, 2);
  r.Run(14000);
  CHECK_EQ(r.peer.connects, 2);
  CHECK_EQ(r.link.wait_ms(), 15000);
  r.peer.accept = true;
  r.Run(2000);
  CHECK_EQ(r.peer.connects, 3);
  CHECK(r.link.state() == Link::State::kOpen);
  CHECK(WebSocketsClient::live_sockets <= 1);  // no socket leaked by begin()
}

TEST(ws_refused_and_broken_handshakes_count_as_failures) {
  Rig<Ws> r;
  r.peer.handshake = Peer::k400;  // e.g. a bad channel signature
  r.Run(50);
  CHECK(r.link.state() == Link::State::kWaiting);
  CHECK_EQ(r.peer.connects, 1);
  r.peer.handshake = Peer::kBadAccept;
  r.Run(200);
  CHECK_EQ(r.peer.connects, 2);
  CHECK(r.link.state() == Link::State::kWaiting);
  CHECK_EQ(r.link.wait_ms(), 15000);
  CHECK_EQ(r.link.stats().connects, 0);
}

TEST(ws_silent_server_hits_the_library_header_timeout) {
  Rig<Ws> r;
  r.peer.handshake = Peer::kSilent;
  r.Run(4900);
  CHECK(r.link.state() == Link::State::kConnecting);
  r.Run(150);  // the library's 5 s, well before the link's own 15 s
  CHECK(r.link.state() == Link::State::kWaiting);
  CHECK_EQ(r.peer.connects, 1);
}

TEST(ws_lost_connection_and_close_frame_reconnect_with_mid) {
  Rig<Ws> r;
  r.Run(50);
  r.peer.to_client += Frame(0x1, Esp(7, "pump", 1));
  r.Run(10);
  r.peer.up = false;  // the TCP connection is gone
  r.Run(10);
  CHECK(r.link.state() == Link::State::kWaiting);
  r.Run(200);
  CHECK(r.link.state() == Link::State::kOpen);
  CHECK(r.peer.last_request.find("&mid=17953984070000000000000007 ") != std::string::npos);
  r.peer.to_client += Frame(0x8, std::string("\x03\xe9", 2));  // close 1001 (eventrelay stopping)
  r.Run(10);
  CHECK(r.link.state() == Link::State::kWaiting);
  CHECK(WebSocketsClient::live_sockets <= 1);
}

TEST(ws_close_from_inside_a_message_callback_is_deferred) {
  Rig<Ws> r;
  r.Run(50);
  r.peer.to_client += Frame(0x1,
                            std::string("#!NGINXNMS!#{\"mid\":\"17953984070000000000000009\",\"text\":{\"module_id\":\"pull\","
                                        "\"command\":\"channel_expire\",\"params\":{\"action\":\"reconnect\",\"new_channel\":{\"id\":\"") +
                                kNext + "\"}}}}#!NGINXNME!#");
  r.net.Loop();  // Link closes inside the library's callback; the socket is released after loop()
  CHECK(r.link.state() == Link::State::kWaiting);
  CHECK_EQ(r.link.wait_ms(), 0);
  CHECK(!r.peer.up);
  CHECK(r.net.phase() == Ws::Phase::kIdle);
  r.Run(30);
  CHECK(r.link.state() == Link::State::kOpen);
  CHECK(r.peer.last_request.find(std::string("CHANNEL_ID=") + kNext + "&mid=17953984070000000000000009 ") !=
        std::string::npos);
  CHECK_EQ(r.link.stats().renewals, 1);
}

TEST(ws_heartbeat_drops_a_peer_that_stopped_answering) {
  Rig<Ws> r;
  r.Run(50);
  CHECK(r.link.state() == Link::State::kOpen);
  // The peer's TCP stays up but nothing comes back (a half-open
  // connection): two missed pongs close it.
  r.Run(40000, 100);
  CHECK(r.peer.pings >= 2);
  CHECK(r.link.stats().connects >= 1);
  CHECK_EQ(r.link.stats().silences, 0);
  CHECK(r.peer.connects >= 2);  // dropped and reconnected
}

TEST(ws_url_split) {
  isobox::WsTarget t;
  CHECK(isobox::SplitWsUrl("ws://relay.lan:8090/bitrix/subws/?CHANNEL_ID=x", &t));
  CHECK_STR(t.host, "relay.lan");
  CHECK_EQ(t.port, 8090);
  CHECK_STR(t.path, "/bitrix/subws/?CHANNEL_ID=x");
  CHECK(!t.secure);
  CHECK(isobox::SplitWsUrl("wss://10.0.0.2:443/", &t) && t.secure);
  CHECK(!isobox::SplitWsUrl("http://a:1/", &t));
  CHECK(!isobox::SplitWsUrl("ws://a/", &t));
  CHECK(!isobox::SplitWsUrl("ws://a:/", &t));
  CHECK(!isobox::SplitWsUrl("ws://a:0/", &t));
  CHECK(!isobox::SplitWsUrl("ws://a:65536/", &t));
  CHECK(!isobox::SplitWsUrl("ws://a:1x/", &t));
  CHECK(!isobox::SplitWsUrl("ws://a b:1/", &t));
  CHECK(!isobox::SplitWsUrl("ws://:1/", &t));
  CHECK(!isobox::SplitWsUrl("ws://a:1", &t));
}

namespace {

// A client with pinned wss:// over the scripted peer: the TLS socket's
// handshake outcome is the test's (key_ok), and pinned says whether the
// library's TLS client was the pinned one (false: a build without it).
struct ScriptedPinned : WebSocketsClient {
  static Peer* peer;
  static bool key_ok;
  static bool pinned;
  bool refused = false;
  bool used = false;
  std::string pin;
  void beginPinned(const char* host, uint16_t port, const char* url, const uint8_t* der, size_t n) {
    pin.assign(reinterpret_cast<const char*>(der), n);
    ssl_factory = [this]() -> HostNet* {
      struct Tls : ScriptedNet {
        ScriptedPinned* owner;
        Tls(Peer& peer_, ScriptedPinned* o) : ScriptedNet(peer_), owner(o) {}
        bool connect(const char* h, uint16_t at) override {
          owner->used = false;
          if (!key_ok) {
            ++p.connects;
            owner->refused = true;  // the handshake met another key
            return false;
          }
          owner->used = pinned;
          return ScriptedNet::connect(h, at);
        }
      };
      return new Tls(*peer, this);
    };
    beginSSL(host, port, url, nullptr, "");
  }
  bool takeKeyRefused() {
    bool r = refused;
    refused = false;
    return r;
  }
  bool pinnedConnection() const { return used; }
};
Peer* ScriptedPinned::peer = nullptr;
bool ScriptedPinned::key_ok = true;
bool ScriptedPinned::pinned = true;

using PinnedWs = isobox::WsTransport<ScriptedPinned>;

const uint8_t kDer[] = {0x30, 0x59, 0x30, 0x13};  // stands for a key: the adapter only hands it on

}  // namespace

TEST(ws_wss_needs_a_pin_and_a_pinning_client) {
  static_assert(!isobox::WsTransport<WebSocketsClient>::kCanPin, "the plain library client cannot pin");
  static_assert(PinnedWs::kCanPin, "beginPinned is detected");
  const char* url = "wss://10.0.0.2:8090/bitrix/subws/?CHANNEL_ID=x";
  isobox::WsTransport<WebSocketsClient> plain;
  plain.SetPin(kDer, sizeof kDer);
  CHECK(!plain.Open(url));  // no unverified TLS: the library's own TLS client is never used
  PinnedWs nopin;
  CHECK(!nopin.Open(url));
  nopin.SetPin(kDer, 0);
  CHECK(!nopin.Open(url));
  CHECK(nopin.Open("ws://10.0.0.2:8090/bitrix/subws/?CHANNEL_ID=x"));  // ws:// still works
}

TEST(ws_wss_pinned_connects_and_reports_a_refused_key) {
  Rig<PinnedWs> r;
  ScriptedPinned::peer = &r.peer;
  ScriptedPinned::key_ok = false;
  ScriptedPinned::pinned = true;
  r.net.SetPin(kDer, sizeof kDer);
  CHECK(r.link.Configure("10.0.0.2", 8090, kChan, false, true));
  r.Run(200);
  CHECK(r.peer.connects >= 1);
  CHECK(r.link.key_refused());
  CHECK(r.link.stats().key_refusals >= 1);
  CHECK(r.link.state() != Link::State::kOpen);
  CHECK_STR(r.net.client().pin, std::string(reinterpret_cast<const char*>(kDer), sizeof kDer));
  CHECK(r.net.client().live_sockets <= 1);  // each refused attempt's socket is freed
  // The key comes back: the next attempt opens and clears the refusal.
  ScriptedPinned::key_ok = true;
  // (The scripted peer answers no heartbeat: stop at the first open.)
  for (int i = 0; i < 600 && r.link.state() != Link::State::kOpen; ++i) r.Run(100, 10);
  CHECK(r.link.state() == Link::State::kOpen);
  CHECK(!r.link.key_refused());
  CHECK(r.peer.last_request.find("GET /bitrix/subws/?CHANNEL_ID=") == 0);
  ScriptedPinned::peer = nullptr;
}

TEST(ws_wss_connection_not_made_by_the_pinned_client_is_dropped) {
  Rig<PinnedWs> r;
  ScriptedPinned::peer = &r.peer;
  ScriptedPinned::key_ok = true;
  ScriptedPinned::pinned = false;  // as if the library had made its own WiFiClientSecure
  r.net.SetPin(kDer, sizeof kDer);
  CHECK(r.link.Configure("10.0.0.2", 8090, kChan, false, true));
  r.Run(20000, 100);
  CHECK(r.net.unpinned() >= 1);
  CHECK_EQ(r.link.stats().connects, 0);
  CHECK(r.link.state() != Link::State::kOpen);
  ScriptedPinned::pinned = true;
  ScriptedPinned::peer = nullptr;
}
