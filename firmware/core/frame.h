// Push & Pull text framing: a WebSocket text frame holds one or more
// messages, each `#!NGINXNMS!#` + one-line JSON + `#!NGINXNME!#`.
// FrameParser is fed a frame in chunks of any size (a transport may hand
// over fragments) and hands every complete message to a sink from its own
// fixed buffer. Messages never span frames, so EndFrame drops a partial one.
#ifndef ISOBOX_FW_FRAME_H
#define ISOBOX_FW_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

namespace isobox {

// Receives each message body (the JSON between the markers). The pointer
// is valid only during the call.
class MessageSink {
 public:
  virtual void OnMessage(const char* json, size_t n) = 0;

 protected:
  ~MessageSink() = default;
};

// Counters of what the parser threw away, for diagnostics.
struct FrameStats {
  uint32_t messages = 0;   // handed to the sink
  uint32_t oversized = 0;  // longer than ISOBOX_FW_MSG_MAX, skipped
  uint32_t truncated = 0;  // frame ended inside a message
};

class FrameParser {
 public:
  explicit FrameParser(MessageSink& sink) : sink_(sink) {}
  FrameParser(const FrameParser&) = delete;
  FrameParser& operator=(const FrameParser&) = delete;

  // Consumes the next n bytes of the current frame.
  void Feed(const char* data, size_t n);
  // Marks the end of the current frame.
  void EndFrame();
  // Forgets any partial message (the connection closed).
  void Reset();

  const FrameStats& stats() const { return stats_; }

 private:
  enum class State : uint8_t { kSeek, kBody, kSkip };
  static constexpr size_t kMarkerLen = 12;

  MessageSink& sink_;
  State state_ = State::kSeek;
  size_t matched_ = 0;  // bytes of the marker being looked for seen so far
  size_t len_ = 0;      // bytes in buf_
  FrameStats stats_;
  char buf_[ISOBOX_FW_MSG_MAX + kMarkerLen];
};

}  // namespace isobox

#endif  // ISOBOX_FW_FRAME_H
