// The setup page's relay list and the flash image are the other untrusted
// inputs: a form field typed by a person, and a sector that may hold
// anything after a crash or a different firmware.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/settings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static isobox::Settings s;
  char text[256];
  size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
  memcpy(text, data, n);
  text[n] = '\0';
  if (isobox::ParseRelayList(text, &s)) {
    if (s.relay_count == 0 || s.relay_count > ISOBOX_FW_RELAYS_MAX) abort();
    for (uint8_t i = 0; i < s.relay_count; ++i)
      if (s.relays[i].pin > 16 || memchr(s.relays[i].name, '\0', sizeof s.relays[i].name) == nullptr) abort();
  }
  uint8_t img[isobox::kSettingsImageSize];
  memset(img, 0, sizeof img);
  memcpy(img, data, size < sizeof img ? size : sizeof img);
  if (isobox::DecodeSettings(img, &s)) {
    // A decoded image re-encodes to itself.
    uint8_t again[isobox::kSettingsImageSize];
    isobox::EncodeSettings(s, again);
    isobox::Settings t;
    if (!isobox::DecodeSettings(again, &t) || memcmp(&s, &t, sizeof s) != 0) abort();
  }
  return 0;
}
