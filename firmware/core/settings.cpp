#include "settings.h"

#include <stddef.h>
#include <string.h>

namespace isobox {
namespace {

constexpr uint32_t kMagic = 0x31425349;  // "ISB1"
constexpr uint16_t kVersion = 1;

uint32_t Crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t Get32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

bool Terminated(const char* s, size_t cap) { return memchr(s, '\0', cap) != nullptr; }

}  // namespace

void EncodeSettings(const Settings& s, uint8_t* out) {
  memset(out, 0, kSettingsImageSize);
  Put32(out, kMagic);
  out[4] = kVersion & 0xFF;
  out[5] = kVersion >> 8;
  out[6] = sizeof(Settings) & 0xFF;
  out[7] = (sizeof(Settings) >> 8) & 0xFF;
  // Copied field by field would be tidier, but Settings is plain data
  // with no pointers; the struct is zeroed by its users before filling so
  // padding bytes are stable and equal images compare equal.
  memcpy(out + 8, &s, sizeof s);
  Put32(out + 8 + sizeof s, Crc32(out, 8 + sizeof s));
}

bool DecodeSettings(const uint8_t* in, Settings* s) {
  memset(s, 0, sizeof *s);
  if (Get32(in) != kMagic || (in[4] | in[5] << 8) != kVersion ||
      static_cast<size_t>(in[6] | in[7] << 8) != sizeof(Settings)) {
    return false;
  }
  if (Get32(in + 8 + sizeof(Settings)) != Crc32(in, 8 + sizeof(Settings))) return false;
  // A bool holding anything but 0 or 1 is undefined behaviour: check the
  // raw bytes before copying them into the struct.
  for (size_t i = 0; i < ISOBOX_FW_RELAYS_MAX; ++i) {
    size_t at = 8 + offsetof(Settings, relays) + i * sizeof(RelaySpec) + offsetof(RelaySpec, activeLow);
    if (in[at] > 1) return false;
  }
  Settings t;
  memcpy(&t, in + 8, sizeof t);
  bool ok = Terminated(t.ssid, sizeof t.ssid) && Terminated(t.pass, sizeof t.pass) &&
            Terminated(t.host, sizeof t.host) && Terminated(t.channel, sizeof t.channel) &&
            t.relay_count <= ISOBOX_FW_RELAYS_MAX;
  for (uint8_t i = 0; ok && i < t.relay_count; ++i)
    ok = Terminated(t.relays[i].name, sizeof t.relays[i].name);
  if (!ok) return false;
  *s = t;
  return true;
}

bool LoadSettings(Storage& st, Settings* s) {
  uint8_t img[kSettingsImageSize];
  if (st.Size() < sizeof img) {
    memset(s, 0, sizeof *s);
    return false;
  }
  st.Read(0, img, sizeof img);
  return DecodeSettings(img, s);
}

int SaveIfChanged(Storage& st, const Settings& s) {
  uint8_t fresh[kSettingsImageSize];
  uint8_t stored[kSettingsImageSize];
  if (st.Size() < sizeof fresh) return -1;
  EncodeSettings(s, fresh);
  st.Read(0, stored, sizeof stored);
  if (memcmp(fresh, stored, sizeof fresh) == 0) return 0;
  return st.Write(0, fresh, sizeof fresh) ? 1 : -1;
}

}  // namespace isobox
