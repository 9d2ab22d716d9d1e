// Reconnect schedule of the Bitrix Push & Pull client (developer handbook,
// "Работа с ошибками"): after the 1st failure 100 ms, the 2nd 15 s, the
// 3rd-5th 45 s, the 6th-10th 10 min, later 1 h; each stretched by a random
// 0-20 % so that a room of relays does not reconnect in lockstep after an
// outage. A connection that stayed up ISOBOX_FW_STABLE_MS resets it.
#ifndef ISOBOX_FW_BACKOFF_H
#define ISOBOX_FW_BACKOFF_H

#include <stdint.h>

#include "config.h"
#include "ports.h"

namespace isobox {

class Backoff {
 public:
  explicit Backoff(Random& rnd) : rnd_(rnd) {}

  // The delay before the next attempt after one more failure.
  uint32_t NextDelayMs();
  // The connection opened at now.
  void Connected(uint32_t now) {
    connected_ = true;
    since_ = now;
  }
  // The connection closed at now (after Connected); a stable one resets.
  void Disconnected(uint32_t now) {
    if (connected_ && now - since_ >= ISOBOX_FW_STABLE_MS) failures_ = 0;
    connected_ = false;
  }
  void Reset() { failures_ = 0; }
  uint32_t failures() const { return failures_; }

  // The schedule without jitter for the n-th consecutive failure (n >= 1).
  static uint32_t BaseDelayMs(uint32_t n);

 private:
  Random& rnd_;
  uint32_t failures_ = 0;
  uint32_t since_ = 0;
  bool connected_ = false;
};

}  // namespace isobox

#endif  // ISOBOX_FW_BACKOFF_H
