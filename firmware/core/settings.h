// The device's saved configuration and its flash image. The image is
// written only when its bytes change (SaveIfChanged): the blog post's
// firmware rewrote the EEPROM sector on every boot and Wi-Fi join, which
// wears the flash out; here a boot only reads.
#ifndef ISOBOX_FW_SETTINGS_H
#define ISOBOX_FW_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ports.h"
#include "relays.h"

namespace isobox {

// How the board reaches eventrelay.
enum TlsMode : uint8_t {
  kPlainWs = 0,    // ws://: unencrypted, chosen explicitly on the setup page (or kept from a pre-TLS image)
  kPinnedWss = 1,  // wss:// to eventrelay's TLS listener, whose public key must equal pin
};

struct Settings {
  char ssid[ISOBOX_FW_SSID_MAX + 1];
  char pass[ISOBOX_FW_PASS_MAX + 1];
  char host[ISOBOX_FW_HOST_MAX + 1];  // eventrelay, e.g. 192.168.1.10
  uint16_t port;                      // eventrelay --http-addr port (8090)
  char channel[ISOBOX_FW_CHANNEL_MAX + 1];  // signed shared channel id
  uint8_t replay_from_start;                // 1: restore relays from history at boot
  uint8_t relay_count;
  RelaySpec relays[ISOBOX_FW_RELAYS_MAX];
  // Version 3. An image of version 1 or 2 (before TLS) reads as kPlainWs
  // with no pin: ws:// was the only transport then, and an update must not
  // silence a working board.
  uint8_t tls;       // TlsMode
  uint16_t pin_len;  // bytes of pin; 0 = none
  uint8_t pin[ISOBOX_FW_PIN_MAX];  // eventrelay's public key, DER SubjectPublicKeyInfo (core/pin.h)
};

// Bytes of the flash image: magic, version, length, settings, CRC-32.
constexpr size_t kSettingsImageSize = 4 + 2 + 2 + sizeof(Settings) + 4;

// Serialises s into out (kSettingsImageSize bytes).
void EncodeSettings(const Settings& s, uint8_t* out);
// Reads an image; false (and *s zeroed) when the magic, version, length or
// CRC does not match or a string is not NUL-terminated — a blank or
// corrupt sector means "not configured", never garbage settings.
bool DecodeSettings(const uint8_t* in, Settings* s);

// CRC-32 (IEEE 802.3), as in the flash images.
uint32_t Crc32(const uint8_t* p, size_t n);

// Loads the settings from storage offset 0.
bool LoadSettings(Storage& st, Settings* s);
// Writes s unless storage already holds the same image. Returns 1 if it
// wrote, 0 if nothing changed, -1 on a write error or a too small storage.
int SaveIfChanged(Storage& st, const Settings& s);

// Parses the setup page's relay list, "name:gpio[:low][:on]" separated by
// commas (e.g. "pump:12:on,fan:13:low", or ":12" for one unnamed relay;
// ":on" = on at power-up, otherwise off), into
// s->relays. Names: letters, digits, '_', '-', '.'; GPIO 0..16. False (and
// s->relay_count 0) on any error, a duplicate name or GPIO, or too many.
bool ParseRelayList(const char* text, Settings* s);

// Whether the transport settings can be used: kPinnedWss needs a valid pin
// (core/pin.h), kPlainWs none. nullptr when usable, else a sentence for the
// setup page and the serial log, copied into buf (cap bytes;
// kPinErrorTextSize holds the longest) and returned.
const char* CheckTransport(const Settings& s, char* buf, size_t cap);

}  // namespace isobox

#endif  // ISOBOX_FW_SETTINGS_H
