// Writes the flash image of the relay's settings into the file the ESP8266
// core's host emulation uses as the EEPROM sector ("eeprom" in the
// emulator's working directory, tests/host/common/MockEEPROM.cpp), so the
// emulated sketch boots configured, as a board whose setup page was saved.
// Built with the emulator's compiler and word size (`make -C firmware
// emulate`), from the core's own encoder, so the image is the sketch's.
//
//   emu_settings FILE HOST PORT CHANNEL RELAYS [pin=TEXT] [replay]
//   pin=TEXT: wss:// with this eventrelay key pinned (what the setup page
//             takes: base64 DER SubjectPublicKeyInfo or a PEM block);
//             without it, plain ws://.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/pin.h"
#include "../../core/settings.h"

namespace {

constexpr size_t kSector = 1024;  // board::Storage::kSize (arduino/isobox_relay/esp8266_ports.h)

bool Copy(char* dst, size_t cap, const char* src) {
  size_t n = strlen(src);
  if (n >= cap) return false;
  memcpy(dst, src, n + 1);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s FILE HOST PORT CHANNEL RELAYS [pin=TEXT] [replay]\n", argv[0]);
    return 2;
  }
  static isobox::Settings s;
  memset(&s, 0, sizeof s);
  long port = strtol(argv[3], nullptr, 10);
  if (!Copy(s.ssid, sizeof s.ssid, "emulated") || !Copy(s.host, sizeof s.host, argv[2]) ||
      !Copy(s.channel, sizeof s.channel, argv[4]) || port < 1 || port > 65535) {
    fprintf(stderr, "emu_settings: host, port or channel does not fit\n");
    return 2;
  }
  s.port = static_cast<uint16_t>(port);
  if (!isobox::ParseRelayList(argv[5], &s)) {
    fprintf(stderr, "emu_settings: bad relay list %s\n", argv[5]);
    return 2;
  }
  s.tls = isobox::kPlainWs;
  for (int i = 6; i < argc; ++i) {
    if (strncmp(argv[i], "pin=", 4) == 0) {
      size_t n = 0;
      isobox::KeyInfo info;
      isobox::PinError e = isobox::ParsePin(argv[i] + 4, s.pin, sizeof s.pin, &n, &info);
      if (e != isobox::PinError::kOk) {
        fprintf(stderr, "emu_settings: the pin is refused (%d)\n", static_cast<int>(e));
        return 2;
      }
      s.pin_len = static_cast<uint16_t>(n);
      s.tls = isobox::kPinnedWss;
    } else if (strcmp(argv[i], "replay") == 0) {
      s.replay_from_start = 1;
    } else {
      fprintf(stderr, "emu_settings: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  char why[isobox::kPinErrorTextSize];
  const char* err = isobox::CheckTransport(s, why, sizeof why);
  if (err != nullptr) {
    fprintf(stderr, "emu_settings: %s\n", err);
    return 2;
  }
  static uint8_t sector[kSector];
  memset(sector, 0xff, sizeof sector);  // erased flash
  static_assert(isobox::kSettingsImageSize <= kSector, "settings do not fit the sector");
  isobox::EncodeSettings(s, sector);
  FILE* f = fopen(argv[1], "wb");
  if (f == nullptr || fwrite(sector, 1, sizeof sector, f) != sizeof sector || fclose(f) != 0) {
    perror(argv[1]);
    return 1;
  }
  return 0;
}
