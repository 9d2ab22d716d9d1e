// The relay firmware on a PC, for the end-to-end test (firmware/e2e): the
// portable core and the board's WebSocket adapter (core/ws_transport.h)
// over the host reproduction of the WebSocket library on a real TCP
// socket. Pins, flash and Wi-Fi are stand-ins driven through stdin and
// reported on stdout, one event per line:
//
//   hostrelay HOST PORT CHANNEL RELAYS [replay] [pin=BASE64] [rx=BYTES] [mac=12HEX]
//   pin=: wss:// to eventrelay's TLS listener with this public key pinned
//         (the text the setup page takes, core/pin.h), over OpenSSL with
//         BearSSL's known-key check (test/ws_host/tls_net.h); rx= is the
//         board's TLS receive buffer (default 16384)
//   stdin:  "down" / "up" (Wi-Fi lost / back), "status", "quit"
//   stdout: "open", "close", "relay NAME on|off mid=MID", "renewed CHANNEL",
//           "keyrefused" (a TLS attempt met another key),
//           "status state=N mid=MID connects=N silences=N renewals=N gaps=N duplicates=N
//            keyrefusals=N led=0|1 largest_record=N"
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <string>

#include "../../core/device.h"
#include "../../core/link.h"
#include "../../core/pin.h"
#include "../../core/settings.h"
#include "../../core/ws_transport.h"
#include "posix_net.h"
#include "tls_net.h"

unsigned long millis() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<unsigned long>(ts.tv_sec) * 1000ul + static_cast<unsigned long>(ts.tv_nsec / 1000000);
}

namespace {

struct Clock : isobox::Clock {
  uint32_t NowMs() override { return static_cast<uint32_t>(millis()); }
};

struct Random : isobox::Random {
  uint32_t Next() override { return static_cast<uint32_t>(random()); }
};

struct Pins : isobox::Pins {
  void Write(uint8_t, bool) override {}
};

isobox::Link* g_link = nullptr;
bool g_open = false;

// Prints "open"/"close" when the link's state crossed it; called after
// every loop() pass and before a command line, since the frames of a replay
// arrive in the same loop() as the handshake.
bool g_refused = false;

void ReportState() {
  if (g_link->key_refused() != g_refused) {
    g_refused = g_link->key_refused();
    if (g_refused) printf("keyrefused\n");
  }
  bool open = g_link->state() == isobox::Link::State::kOpen;
  if (open == g_open) return;
  g_open = open;
  printf("%s\n", open ? "open" : "close");
}

struct Listener : isobox::LinkListener {
  void OnChannelRenewed(const char* channel) override { printf("renewed %s\n", channel); }
  void OnRelayCommand(const char* device, bool on, uint8_t) override {
    ReportState();
    printf("relay %s %s mid=%s\n", device, on ? "on" : "off", g_link->last_mid());
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s HOST PORT CHANNEL RELAYS [replay] [pin=BASE64] [rx=BYTES]\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  srandom(static_cast<unsigned>(millis()));
  WebSocketsClient::net_factory = []() -> HostNet* { return new PosixNet(); };

  static isobox::Settings settings;
  if (!isobox::ParseRelayList(argv[4], &settings)) {
    fprintf(stderr, "bad relay list %s\n", argv[4]);
    return 2;
  }
  Clock clock;
  Random rnd;
  Pins pins;
  Listener listener;
  isobox::RelayBank relays(pins);
  for (uint8_t i = 0; i < settings.relay_count; ++i) {
    relays.Add(settings.relays[i].name, settings.relays[i].pin, settings.relays[i].activeLow,
               settings.relays[i].onAtBoot);
  }
  relays.Begin();
  isobox::WsTransport<PinnedHostClient> transport;
  isobox::Link link(clock, rnd, transport, relays, &listener);
  g_link = &link;
  bool replay = false;
  for (int i = 5; i < argc; ++i) {
    if (strcmp(argv[i], "replay") == 0) {
      replay = true;
    } else if (strncmp(argv[i], "pin=", 4) == 0) {
      size_t n = 0;
      isobox::KeyInfo info;
      isobox::PinError e = isobox::ParsePin(argv[i] + 4, settings.pin, sizeof settings.pin, &n, &info);
      if (e != isobox::PinError::kOk) {
        char why[isobox::kPinErrorTextSize];
        fprintf(stderr, "pin: %s\n", isobox::PinErrorText(e, why, sizeof why));
        return 2;
      }
      settings.pin_len = static_cast<uint16_t>(n);
      settings.tls = isobox::kPinnedWss;
    } else if (strncmp(argv[i], "mac=", 4) == 0) {
      // The station MAC a board would read (WiFi.macAddress): its name,
      // sent as device=, is made from it as the sketch does.
      uint8_t mac[6];
      const char* h = argv[i] + 4;
      if (strlen(h) != 12 || strspn(h, "0123456789abcdef") != 12) {
        fprintf(stderr, "mac: 12 lowercase hex digits\n");
        return 2;
      }
      for (int k = 0; k < 6; ++k) {
        char byte[3] = {h[2 * k], h[2 * k + 1], '\0'};
        mac[k] = static_cast<uint8_t>(strtoul(byte, nullptr, 16));
      }
      char id[isobox::kDeviceIdSize];
      if (!isobox::DeviceId(mac, id) || !link.SetDeviceId(id)) {
        fprintf(stderr, "device name %s refused\n", id);
        return 2;
      }
    } else if (strncmp(argv[i], "rx=", 3) == 0) {
      transport.client().rx_bytes = static_cast<size_t>(atoi(argv[i] + 3));
    } else {
      fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  transport.SetPin(settings.pin, settings.pin_len);
  if (!link.Configure(argv[1], static_cast<uint16_t>(atoi(argv[2])), argv[3], replay,
                      settings.tls == isobox::kPinnedWss)) {
    fprintf(stderr, "bad host, port or channel\n");
    return 2;
  }
  transport.Attach(&link);
  link.SetNetwork(true);

  std::string in;
  for (;;) {
    pollfd p{0, POLLIN, 0};
    if (poll(&p, 1, 2) > 0) {
      char buf[256];
      ssize_t n = read(0, buf, sizeof buf);
      if (n <= 0) return 0;  // the test went away
      in.append(buf, static_cast<size_t>(n));
      size_t nl;
      while ((nl = in.find('\n')) != std::string::npos) {
        std::string cmd = in.substr(0, nl);
        in.erase(0, nl + 1);
        if (cmd == "down") link.SetNetwork(false);
        if (cmd == "up") link.SetNetwork(true);
        if (cmd == "quit") return 0;
        if (cmd == "status") {
          const TlsOutcome* o = transport.client().outcome();
          printf("status state=%d mid=%s connects=%u silences=%u renewals=%u gaps=%u duplicates=%u keyrefusals=%u "
                 "led=%d largest_record=%zu\n",
                 static_cast<int>(link.state()), link.last_mid(), link.stats().connects, link.stats().silences,
                 link.stats().renewals, link.stats().gaps, link.stats().duplicates, link.stats().key_refusals,
                 isobox::StatusLedLit(link.state() == isobox::Link::State::kOpen, link.key_refused(),
                                      static_cast<uint32_t>(millis()))
                     ? 1
                     : 0,
                 o != nullptr ? o->largest_record : size_t{0});
        }
      }
    }
    transport.Loop();
    link.Tick();
    ReportState();
  }
}
