#include "backoff.h"

namespace isobox {

uint32_t Backoff::BaseDelayMs(uint32_t n) {
  uint32_t d;
  if (n <= 1) {
    d = 100;
  } else if (n == 2) {
    d = 15000;
  } else if (n <= 5) {
    d = 45000;
  } else if (n <= 10) {
    d = 600000;
  } else {
    d = 3600000;
  }
  return d < ISOBOX_FW_BACKOFF_CAP_MS ? d : ISOBOX_FW_BACKOFF_CAP_MS;
}

uint32_t Backoff::NextDelayMs() {
  if (failures_ < UINT32_MAX) ++failures_;
  uint32_t base = BaseDelayMs(failures_);
  // 64-bit product: 3.6e6 ms * 1000 would overflow 32 bits.
  uint64_t jitter = static_cast<uint64_t>(base) * (rnd_.Next() % (ISOBOX_FW_JITTER_PERMILLE + 1)) / 1000;
  return base + static_cast<uint32_t>(jitter);
}

}  // namespace isobox
