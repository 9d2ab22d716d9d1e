#include "settings.h"

#include <stddef.h>
#include <string.h>

#include "flash.h"
#include "pin.h"

namespace isobox {

uint32_t Crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

namespace {

constexpr uint32_t kMagic = 0x31425349;  // "ISB1"
constexpr uint16_t kVersion = 3;  // 2: RelaySpec.onAtBoot; 3: tls, pin

// Version 1 (no onAtBoot): read, so that an update keeps a board's settings.
struct RelaySpecV1 {
  char name[ISOBOX_FW_NAME_MAX + 1];
  uint8_t pin;
  uint8_t activeLow;
};
constexpr size_t kRelaysAt = offsetof(Settings, relays);
// sizeof(Settings) as versions 1 and 2 had it, tail padding included: the
// fields up to the relays, aligned as their uint16_t port was.
constexpr size_t kAlignV2 = alignof(uint16_t);
constexpr size_t kSizeV1 = (kRelaysAt + ISOBOX_FW_RELAYS_MAX * sizeof(RelaySpecV1) + kAlignV2 - 1) / kAlignV2 * kAlignV2;
constexpr size_t kTlsAt = offsetof(Settings, tls);
constexpr size_t kSizeV2 = (kTlsAt + kAlignV2 - 1) / kAlignV2 * kAlignV2;
static_assert(kTlsAt == kRelaysAt + ISOBOX_FW_RELAYS_MAX * sizeof(RelaySpec), "version 3 appends to version 2");

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t Get32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

bool Terminated(const char* s, size_t cap) { return memchr(s, '\0', cap) != nullptr; }

}  // namespace

namespace {

// Copies s field by field into zeroed memory: padding and the bytes after
// each string's NUL are always zero, so two equal settings give equal
// images and SaveIfChanged never writes for nothing.
void Normalize(const Settings& s, Settings* t) {
  memset(t, 0, sizeof *t);
  strncpy(t->ssid, s.ssid, sizeof t->ssid - 1);
  strncpy(t->pass, s.pass, sizeof t->pass - 1);
  strncpy(t->host, s.host, sizeof t->host - 1);
  t->port = s.port;
  strncpy(t->channel, s.channel, sizeof t->channel - 1);
  t->replay_from_start = s.replay_from_start ? 1 : 0;
  t->relay_count = s.relay_count <= ISOBOX_FW_RELAYS_MAX ? s.relay_count : 0;
  for (uint8_t i = 0; i < t->relay_count; ++i) {
    strncpy(t->relays[i].name, s.relays[i].name, sizeof t->relays[i].name - 1);
    t->relays[i].pin = s.relays[i].pin;
    t->relays[i].activeLow = s.relays[i].activeLow;
    t->relays[i].onAtBoot = s.relays[i].onAtBoot;
  }
  t->tls = s.tls == kPinnedWss ? kPinnedWss : kPlainWs;
  t->pin_len = s.pin_len <= sizeof t->pin ? s.pin_len : 0;
  memcpy(t->pin, s.pin, t->pin_len);
}

}  // namespace

void EncodeSettings(const Settings& s, uint8_t* out) {
  memset(out, 0, kSettingsImageSize);
  Put32(out, kMagic);
  out[4] = kVersion & 0xFF;
  out[5] = kVersion >> 8;
  out[6] = sizeof(Settings) & 0xFF;
  out[7] = (sizeof(Settings) >> 8) & 0xFF;
  Settings t;
  Normalize(s, &t);
  memcpy(out + 8, &t, sizeof t);
  Put32(out + 8 + sizeof t, Crc32(out, 8 + sizeof t));
}

bool DecodeSettings(const uint8_t* in, Settings* s) {
  memset(s, 0, sizeof *s);
  if (Get32(in) != kMagic) return false;
  unsigned version = in[4] | in[5] << 8;
  size_t size = static_cast<size_t>(in[6] | in[7] << 8);
  bool v1 = version == 1 && size == kSizeV1;
  bool v2 = version == 2 && size == kSizeV2;
  if (!v1 && !v2 && (version != kVersion || size != sizeof(Settings))) return false;
  if (8 + size + 4 > kSettingsImageSize || Get32(in + 8 + size) != Crc32(in, 8 + size)) return false;
  Settings t;
  memset(&t, 0, sizeof t);
  if (v1) {
    memcpy(&t, in + 8, kRelaysAt);
    for (size_t i = 0; i < ISOBOX_FW_RELAYS_MAX; ++i) {
      RelaySpecV1 r;
      memcpy(&r, in + 8 + kRelaysAt + i * sizeof r, sizeof r);
      if (r.activeLow > 1) return false;
      memcpy(t.relays[i].name, r.name, sizeof r.name);
      t.relays[i].pin = r.pin;
      t.relays[i].activeLow = r.activeLow != 0;
    }
  } else {
    // A bool holding anything but 0 or 1 is undefined behaviour: check the
    // raw bytes before copying them into the struct.
    for (size_t i = 0; i < ISOBOX_FW_RELAYS_MAX; ++i) {
      size_t at = 8 + kRelaysAt + i * sizeof(RelaySpec);
      if (in[at + offsetof(RelaySpec, activeLow)] > 1 || in[at + offsetof(RelaySpec, onAtBoot)] > 1) return false;
    }
    if (v2) {
      memcpy(&t, in + 8, kTlsAt);  // tls = kPlainWs, no pin
    } else {
      memcpy(&t, in + 8, sizeof t);
      if (t.tls > kPinnedWss || t.pin_len > sizeof t.pin) return false;
    }
  }
  bool ok = Terminated(t.ssid, sizeof t.ssid) && Terminated(t.pass, sizeof t.pass) &&
            Terminated(t.host, sizeof t.host) && Terminated(t.channel, sizeof t.channel) &&
            t.relay_count <= ISOBOX_FW_RELAYS_MAX;
  for (uint8_t i = 0; ok && i < t.relay_count; ++i)
    ok = Terminated(t.relays[i].name, sizeof t.relays[i].name);
  if (!ok) return false;
  // Bytes after a string's NUL or beyond pin_len are dropped: the decoded
  // settings re-encode to the same image.
  Normalize(t, s);
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

const char* CheckTransport(const Settings& s, char* buf, size_t cap) {
  if (s.tls == kPlainWs) return nullptr;
  if (s.tls != kPinnedWss) return flash::Copy(ISOBOX_FSTR("unknown transport"), buf, cap);
  if (s.pin_len == 0)
    return flash::Copy(
        ISOBOX_FSTR("wss:// needs eventrelay's public key (the pin): paste what `authprovider tls pin --cert FILE` prints"),
        buf, cap);
  KeyInfo info;
  PinError e = CheckSpki(s.pin, s.pin_len, &info);
  return e == PinError::kOk ? nullptr : PinErrorText(e, buf, cap);
}

bool ParseRelayList(const char* text, Settings* s) {
  s->relay_count = 0;
  memset(s->relays, 0, sizeof s->relays);
  if (text == nullptr) return false;
  const char* p = text;
  uint8_t n = 0;
  while (*p != '\0') {
    if (n >= ISOBOX_FW_RELAYS_MAX) break;
    RelaySpec& r = s->relays[n];
    size_t len = 0;
    while (*p != ':' && *p != '\0' && *p != ',') {
      char c = *p++;
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-' || c == '.';
      if (!ok || len >= ISOBOX_FW_NAME_MAX) goto fail;
      r.name[len++] = c;
    }
    if (*p++ != ':') goto fail;
    {
      unsigned pin = 0;
      size_t digits = 0;
      while (*p >= '0' && *p <= '9' && digits < 3) pin = pin * 10 + static_cast<unsigned>(*p++ - '0'), ++digits;
      if (digits == 0 || pin > 16) goto fail;
      r.pin = static_cast<uint8_t>(pin);
    }
    size_t k = 0;
    if (flash::StartsWith(p, ISOBOX_FSTR(":low"), &k)) {
      r.activeLow = true;
      p += k;
    }
    if (flash::StartsWith(p, ISOBOX_FSTR(":on"), &k)) {
      r.onAtBoot = true;
      p += k;
    }
    for (uint8_t i = 0; i < n; ++i)
      if (s->relays[i].pin == r.pin || strcmp(s->relays[i].name, r.name) == 0) goto fail;
    ++n;
    if (*p == ',') {
      ++p;
      if (*p == '\0') goto fail;
    } else if (*p != '\0') {
      goto fail;
    }
  }
  if (n == 0 || *p != '\0') goto fail;
  s->relay_count = n;
  return true;
fail:
  memset(s->relays, 0, sizeof s->relays);
  s->relay_count = 0;
  return false;
}

}  // namespace isobox
