#include "frame.h"

#include "flash.h"

namespace isobox {
namespace {

constexpr flash::Literal<sizeof "#!NGINXNMS!#"> kStartText ISOBOX_FLASH{"#!NGINXNMS!#"};
constexpr flash::Literal<sizeof "#!NGINXNME!#"> kEndText ISOBOX_FLASH{"#!NGINXNME!#"};
static_assert(kStartText.size() == 12 && kEndText.size() == 12, "FrameParser::kMarkerLen");

// Advances a marker match by one byte. Only the marker's first byte, '#',
// recurs in it (as its last), so on a mismatch the match restarts at 1 if
// the byte is '#' and at 0 otherwise.
size_t Step(flash::Str marker, size_t matched, char c) {
  if (marker[matched] == c) return matched + 1;
  return c == '#' ? 1 : 0;
}

}  // namespace

void FrameParser::Feed(const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    char c = data[i];
    switch (state_) {
      case State::kSeek:
        matched_ = Step(kStartText.str(), matched_, c);
        if (matched_ == kMarkerLen) {
          state_ = State::kBody;
          matched_ = 0;
          len_ = 0;
        }
        break;
      case State::kBody:
        // The end marker is collected too and cut off when it completes;
        // buf_ has room for a full message plus the marker.
        buf_[len_++] = c;
        matched_ = Step(kEndText.str(), matched_, c);
        if (matched_ == kMarkerLen) {
          ++stats_.messages;
          state_ = State::kSeek;
          matched_ = 0;
          sink_.OnMessage(buf_, len_ - kMarkerLen);
        } else if (len_ == sizeof buf_) {
          ++stats_.oversized;
          state_ = State::kSkip;
        }
        break;
      case State::kSkip:
        matched_ = Step(kEndText.str(), matched_, c);
        if (matched_ == kMarkerLen) {
          state_ = State::kSeek;
          matched_ = 0;
        }
        break;
    }
  }
}

void FrameParser::EndFrame() {
  if (state_ == State::kBody) ++stats_.truncated;
  Reset();
}

void FrameParser::Reset() {
  state_ = State::kSeek;
  matched_ = 0;
  len_ = 0;
}

}  // namespace isobox
