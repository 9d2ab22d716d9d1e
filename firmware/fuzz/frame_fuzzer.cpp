// Feeds arbitrary bytes as WebSocket frames through the frame parser and
// every message it yields through the message decoder, the way Link does.
// The first byte picks the chunk size, so fragment boundaries are fuzzed
// too; a 0xFF byte ends the current frame.
#include <stddef.h>
#include <stdint.h>

#include "../core/frame.h"
#include "../core/message.h"

namespace {
struct Sink : isobox::MessageSink {
  isobox::Message msg;
  void OnMessage(const char* json, size_t n) override { isobox::ParseMessage(json, n, &msg); }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static Sink sink;
  isobox::FrameParser parser(sink);
  size_t chunk = (data[0] % 64) + 1;
  const char* p = reinterpret_cast<const char*>(data + 1);
  size_t n = size - 1;
  size_t start = 0;
  for (size_t i = 0; i <= n; ++i) {
    bool boundary = i == n || static_cast<uint8_t>(p[i]) == 0xFF;
    if (!boundary) continue;
    for (size_t at = start; at < i; at += chunk) parser.Feed(p + at, (i - at) < chunk ? i - at : chunk);
    parser.EndFrame();
    start = i + 1;
  }
  return 0;
}
