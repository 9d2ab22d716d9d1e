// The relay firmware on a PC, for the end-to-end test (firmware/e2e): the
// portable core and the board's WebSocket adapter (core/ws_transport.h)
// over the host reproduction of the WebSocket library on a real TCP
// socket. Pins, flash and Wi-Fi are stand-ins driven through stdin and
// reported on stdout, one event per line:
//
//   hostrelay HOST PORT CHANNEL RELAYS [replay]
//   stdin:  "down" / "up" (Wi-Fi lost / back), "status", "quit"
//   stdout: "open", "close", "relay NAME on|off mid=MID", "renewed CHANNEL",
//           "status state=N mid=MID connects=N silences=N renewals=N gaps=N duplicates=N"
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <string>

#include "../../core/link.h"
#include "../../core/settings.h"
#include "../../core/ws_transport.h"
#include "posix_net.h"

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
void ReportState() {
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
    fprintf(stderr, "usage: %s HOST PORT CHANNEL RELAYS [replay]\n", argv[0]);
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
  isobox::WsTransport<WebSocketsClient> transport;
  isobox::Link link(clock, rnd, transport, relays, &listener);
  g_link = &link;
  bool replay = argc > 5 && strcmp(argv[5], "replay") == 0;
  if (!link.Configure(argv[1], static_cast<uint16_t>(atoi(argv[2])), argv[3], replay)) {
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
          printf("status state=%d mid=%s connects=%u silences=%u renewals=%u gaps=%u duplicates=%u\n",
                 static_cast<int>(link.state()), link.last_mid(), link.stats().connects, link.stats().silences,
                 link.stats().renewals, link.stats().gaps, link.stats().duplicates);
        }
      }
    }
    transport.Loop();
    link.Tick();
    ReportState();
  }
}
