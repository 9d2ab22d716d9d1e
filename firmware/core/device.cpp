#include "device.h"

#include <string.h>

#include "flash.h"
#include "settings.h"

namespace isobox {
namespace {

constexpr uint32_t kSecretMagic = 0x31455349;  // "ISE1"
constexpr uint32_t kGuardMagic = 0x31475349;   // "ISG1"

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t Get32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// A bounded writer of HTML.
struct Html {
  char* out;
  size_t cap;
  size_t n = 0;
  bool ok = true;
  void Raw(flash::Str s) {
    for (size_t i = 0; s[i] != '\0'; ++i) Char(s[i]);
  }
  void Char(char c) {
    if (n + 1 >= cap) {
      ok = false;
      return;
    }
    out[n++] = c;
  }
  // One character of text, escaped.
  void Esc(char c) {
    switch (c) {
      case '&': Raw(ISOBOX_FSTR("&amp;")); break;
      case '<': Raw(ISOBOX_FSTR("&lt;")); break;
      case '>': Raw(ISOBOX_FSTR("&gt;")); break;
      case '"': Raw(ISOBOX_FSTR("&quot;")); break;
      case '\'': Raw(ISOBOX_FSTR("&#39;")); break;
      default: Char(c);
    }
  }
  void Text(const char* s) {
    if (s == nullptr) return;
    for (; *s; ++s) Esc(*s);
  }
  void Text(flash::Str s) {
    for (size_t i = 0; s[i] != '\0'; ++i) Esc(s[i]);
  }
  void Num(uint32_t v) {
    char d[11];
    int i = 0;
    do {
      d[i++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (i > 0) Char(d[--i]);
  }
  void Head(flash::Str name) {
    Raw(ISOBOX_FSTR("<tr><th>"));
    Raw(name);
    Raw(ISOBOX_FSTR("<td>"));
  }
  void Row(flash::Str name, const char* value) {
    Head(name);
    Text(value);
    Char('\n');
  }
  void Row(flash::Str name, flash::Str value) {
    Head(name);
    Text(value);
    Char('\n');
  }
  void Row(flash::Str name, uint32_t value) {
    Head(name);
    Num(value);
    Char('\n');
  }
};

}  // namespace

bool LoadOrCreateSecret(Storage& st, size_t off, Random& rnd, uint8_t out[kSecretLen], bool* created) {
  uint8_t img[kSecretImageSize];
  *created = false;
  bool fits = st.Size() >= off + sizeof img;
  if (fits) {
    st.Read(off, img, sizeof img);
    if (Get32(img) == kSecretMagic && Get32(img + 4 + kSecretLen) == Crc32(img, 4 + kSecretLen)) {
      memcpy(out, img + 4, kSecretLen);
      return true;
    }
  }
  for (size_t i = 0; i < kSecretLen; i += 4) {
    uint32_t r = rnd.Next();
    for (size_t k = 0; k < 4 && i + k < kSecretLen; ++k) out[i + k] = static_cast<uint8_t>(r >> (8 * k));
  }
  *created = true;
  if (!fits) return false;
  Put32(img, kSecretMagic);
  memcpy(img + 4, out, kSecretLen);
  Put32(img + 4 + kSecretLen, Crc32(img, 4 + kSecretLen));
  return st.Write(off, img, sizeof img);
}

void ApPassword(uint32_t chipId, const uint8_t secret[kSecretLen], char out[13]) {
  static constexpr flash::Literal<33> kAlphabetText ISOBOX_FLASH{"23456789abcdefghijkmnpqrstuvwxyz"};  // 32, no 0 o 1 l
  constexpr flash::Str kAlphabet = kAlphabetText.str();
  uint8_t b[kSecretLen];
  for (size_t i = 0; i < kSecretLen; ++i) b[i] = static_cast<uint8_t>(secret[i] ^ (chipId >> (8 * (i % 4))));
  // 12 groups of 5 bits from the first 60 bits.
  for (int i = 0; i < 12; ++i) {
    int bit = i * 5;
    uint32_t w = static_cast<uint32_t>(b[bit / 8]) | static_cast<uint32_t>(b[bit / 8 + 1]) << 8;
    out[i] = kAlphabet[(w >> (bit % 8)) & 31u];
  }
  out[12] = '\0';
}

bool ButtonHold::Update(bool pressed, uint32_t now) {
  if (!pressed) {
    down_ = fired_ = false;
    return false;
  }
  if (!down_) {
    down_ = true;
    since_ = now;
  }
  if (fired_ || now - since_ < ISOBOX_FW_BUTTON_HOLD_MS) return false;
  fired_ = true;
  return true;
}

bool BootGuard::Boot(bool powerOn) {
  count_ = 0;
  uint8_t img[12];
  if (!powerOn && scratch_.Read(img, sizeof img) && Get32(img) == kGuardMagic &&
      Get32(img + 8) == Crc32(img, 8)) {
    count_ = Get32(img + 4);
  }
  if (count_ < 0xFFFFu) ++count_;
  Store();
  return count_ > ISOBOX_FW_BOOT_LOOP_MAX;
}

void BootGuard::Tick(uint32_t now) {
  if (cleared_ || now < ISOBOX_FW_STABLE_BOOT_MS) return;  // now: millis() since this boot
  cleared_ = true;
  count_ = 0;
  Store();
}

void BootGuard::Store() {
  uint8_t img[12];
  Put32(img, kGuardMagic);
  Put32(img + 4, count_);
  Put32(img + 8, Crc32(img, 8));
  scratch_.Write(img, sizeof img);
}

bool StatusLedLit(bool subscribed, bool keyRefused, uint32_t now) {
  if (subscribed) return true;
  return keyRefused && (now / 100u) % 2u == 0;
}

bool DeviceId(const uint8_t mac[6], char out[kDeviceIdSize]) {
  static constexpr flash::Literal<sizeof "isobox-relay-"> kPrefix ISOBOX_FLASH{"isobox-relay-"};
  static constexpr flash::Literal<17> kHexText ISOBOX_FLASH{"0123456789abcdef"};
  constexpr flash::Str kHex = kHexText.str();
  uint8_t all = 0xff, any = 0;
  for (int i = 0; i < 6; ++i) {
    all &= mac[i];
    any |= mac[i];
  }
  if (any == 0 || all == 0xff) {
    out[0] = '\0';
    return false;
  }
  flash::Copy(kPrefix.str(), out, kDeviceIdSize);
  char* p = out + kPrefix.size();
  for (int i = 0; i < 6; ++i) {
    *p++ = kHex[mac[i] >> 4];
    *p++ = kHex[mac[i] & 0xf];
  }
  *p = '\0';
  return true;
}

size_t RenderStatus(const StatusView& v, char* out, size_t cap) {
  if (out == nullptr || cap == 0) return 0;
  Html h{out, cap};
  h.Raw(ISOBOX_FSTR("<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        "<title>isobox relay</title><h1>isobox relay</h1><table>\n"));
  h.Row(ISOBOX_FSTR("state"), v.state);
  h.Row(ISOBOX_FSTR("firmware"), v.firmware);
  if (v.device != nullptr) h.Row(ISOBOX_FSTR("device name"), v.device);
  h.Row(ISOBOX_FSTR("uptime, s"), v.uptime_s);
  h.Row(ISOBOX_FSTR("last reset"), v.reset_reason);
  h.Row(ISOBOX_FSTR("free heap, bytes"), v.free_heap);
  if (v.mid != nullptr && v.mid[0] != '\0') {
    h.Row(ISOBOX_FSTR("last mid"), v.mid);
  } else {
    h.Row(ISOBOX_FSTR("last mid"), ISOBOX_FSTR("-"));
  }
  h.Raw(ISOBOX_FSTR("<tr><th>last command<td>"));
  if (v.last_device != nullptr && v.last_device[0] != '\0') {
    h.Text(v.last_device);
    h.Raw(v.last_on ? ISOBOX_FSTR(" on") : ISOBOX_FSTR(" off"));
  } else if (v.last_device != nullptr) {
    h.Raw(ISOBOX_FSTR("(unnamed) "));
    h.Raw(v.last_on ? ISOBOX_FSTR("on") : ISOBOX_FSTR("off"));
  } else {
    h.Char('-');
  }
  h.Char('\n');
  for (uint8_t i = 0; i < v.relay_count && i < ISOBOX_FW_RELAYS_MAX; ++i) {
    h.Raw(ISOBOX_FSTR("<tr><th>relay "));
    if (v.relay_names[i] != nullptr && v.relay_names[i][0] != '\0') {
      h.Text(v.relay_names[i]);
    } else {
      h.Raw(ISOBOX_FSTR("(unnamed)"));
    }
    h.Raw(ISOBOX_FSTR("<td>"));
    h.Raw(v.relay_on[i] ? ISOBOX_FSTR("on") : ISOBOX_FSTR("off"));
    h.Char('\n');
  }
  h.Row(ISOBOX_FSTR("connections"), v.connects);
  h.Row(ISOBOX_FSTR("channel renewals"), v.renewals);
  h.Row(ISOBOX_FSTR("history gaps"), v.gaps);
  h.Row(ISOBOX_FSTR("rejected messages"), v.rejected);
  h.Row(ISOBOX_FSTR("silent connections dropped"), v.silences);
  h.Row(ISOBOX_FSTR("transport"), v.secure ? ISOBOX_FSTR("wss:// (TLS, pinned key)")
                                   : ISOBOX_FSTR("ws:// (unencrypted, chosen on the setup page)"));
  if (v.pin != nullptr && v.pin[0] != '\0') {
    h.Raw(ISOBOX_FSTR("<tr><th>eventrelay key (pin)<td>"));
    h.Text(v.key_kind);
    h.Char(' ');
    h.Text(v.pin);
    h.Char('\n');
  }
  if (v.secure) {
    h.Row(ISOBOX_FSTR("TLS key refusals"), v.key_refusals);
    if (v.tls_rx_bytes != 0) h.Row(ISOBOX_FSTR("TLS receive buffer, bytes"), v.tls_rx_bytes);
    if (v.tls_too_large != 0) h.Row(ISOBOX_FSTR("TLS records too large for 4 KiB"), v.tls_too_large);
    if (v.key_refused) h.Row(ISOBOX_FSTR("TLS"), ISOBOX_FSTR("REFUSED: eventrelay's key is not the pinned one"));
  }
  h.Raw(ISOBOX_FSTR("</table>\n"));
  if (!h.ok) {
    out[0] = '\0';
    return 0;
  }
  out[h.n] = '\0';
  return h.n;
}

}  // namespace isobox
