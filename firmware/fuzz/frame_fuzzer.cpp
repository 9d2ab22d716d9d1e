// Feeds arbitrary bytes as WebSocket frames into a connected Link, the way
// the Arduino shim does: frame parser, message and command decoding, mid
// tracking, relay application and channel renewal all see hostile input.
// The first byte picks the chunk size, so fragment boundaries are fuzzed
// too; a 0xFF byte ends the current frame.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/link.h"

namespace {

struct Ports : isobox::Clock, isobox::Random, isobox::Pins, isobox::Transport {
  uint32_t now = 0;
  uint32_t NowMs() override { return now += 7; }
  uint32_t Next() override { return now * 2654435761u; }
  void Write(uint8_t, bool) override {}
  bool Open(const char* url) override {
    if (strncmp(url, "ws://", 5) != 0) abort();
    return true;
  }
  void Close() override {}
};

const char* kChan = "0123456789abcdef0123456789abcdef.0123456789abcdef0123456789abcdef01234567";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static Ports ports;
  isobox::RelayBank relays(ports);
  relays.Add("pump", 12, false);
  relays.Add("", 13, true);
  isobox::Link link(ports, ports, ports, relays);
  if (!link.Configure("10.0.0.2", 8090, kChan, (data[0] & 0x80) != 0)) abort();
  link.SetNetwork(true);
  link.Tick();
  link.OnOpen();

  size_t chunk = (data[0] & 0x3F) + 1;
  const char* p = reinterpret_cast<const char*>(data + 1);
  size_t n = size - 1;
  size_t start = 0;
  for (size_t i = 0; i <= n; ++i) {
    bool boundary = i == n || static_cast<uint8_t>(p[i]) == 0xFF;
    if (!boundary) continue;
    for (size_t at = start; at < i; at += chunk) link.OnData(p + at, (i - at) < chunk ? i - at : chunk);
    link.OnFrameEnd();
    start = i + 1;
  }
  // Whatever arrived, the link stays consistent: a valid channel, a mid of
  // 26 digits or none, and a URL it can build for the next connection.
  if (!isobox::IsSignedChannelId(link.channel())) abort();
  if (link.last_mid()[0] != '\0' && !isobox::IsMid(link.last_mid())) abort();
  link.OnClose();
  for (int i = 0; i < 3 && link.state() != isobox::Link::State::kConnecting; ++i) {
    ports.now += 100000;
    link.Tick();
  }
  if (link.state() != isobox::Link::State::kConnecting) abort();
  return 0;
}
