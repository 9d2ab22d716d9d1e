// What makes one board safe to leave on a LAN: its own setup-AP password
// (from a random secret made once and kept in flash, never a default
// shared by every board), the setup button's long press, a boot-loop
// guard, and the read-only status page. Policy only; the sketch wires it
// to the SDK.
#ifndef ISOBOX_FW_DEVICE_H
#define ISOBOX_FW_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ports.h"

namespace isobox {

// --- per-device secret and setup-AP password ---------------------------

constexpr size_t kSecretLen = 10;                        // 80 random bits
constexpr size_t kSecretImageSize = 4 + kSecretLen + 4;  // magic, secret, CRC-32

// Reads the device secret kept at offset off of storage. When there is
// none (a new board) or it is corrupt, makes one from rnd (the hardware
// RNG) and writes it: once in the board's life, not on every boot.
// *created tells which. False on a flash error or a too small storage;
// out then holds a fresh secret valid until reboot.
bool LoadOrCreateSecret(Storage& st, size_t off, Random& rnd, uint8_t out[kSecretLen], bool* created);

// The setup AP's WPA2 password: 12 characters from an alphabet without
// look-alikes (no 0/o, 1/l), 60 bits of the secret mixed with the chip id.
// Printed on the serial port at boot, for the board's label. out: 13 bytes.
void ApPassword(uint32_t chipId, const uint8_t secret[kSecretLen], char out[13]);

// --- device name -------------------------------------------------------

constexpr size_t kDeviceIdSize = 26;  // "isobox-relay-" + 12 hex digits + NUL

// The board's name for eventrelay (device= on subscribe): "isobox-relay-"
// and the station MAC in lowercase hex, e.g. isobox-relay-5ccf7f0a1b2c.
// The whole MAC, not the 24-bit chip id of the setup AP's name
// (isobox-relay-%06x, which are its last six digits): unique by
// construction across Espressif's several OUIs, and what the DHCP server's
// lease table shows for the board (and esptool's read_mac). Not a secret
// and not a credential. False, and out "", for a MAC of all zeros or all
// ones (not read): every such board would share one name.
bool DeviceId(const uint8_t mac[6], char out[kDeviceIdSize]);

// --- setup button ----------------------------------------------------

// Reports a long press once: the button held down for ISOBOX_FW_BUTTON_HOLD_MS.
class ButtonHold {
 public:
  // Call every loop(); true once per press, when it has lasted long enough.
  bool Update(bool pressed, uint32_t now);

 private:
  bool down_ = false;
  bool fired_ = false;
  uint32_t since_ = 0;
};

// --- boot-loop guard ---------------------------------------------------

// Memory that survives a reset but not a power cut (the ESP8266's RTC user
// memory).
class Scratch {
 public:
  virtual bool Read(uint8_t* out, size_t n) = 0;
  virtual bool Write(const uint8_t* data, size_t n) = 0;

 protected:
  ~Scratch() = default;
};

// Counts boots that did not reach ISOBOX_FW_STABLE_BOOT_MS of uptime. After
// ISOBOX_FW_BOOT_LOOP_MAX of them in a row the board starts in safe mode:
// relays off, no connection to eventrelay, the setup AP open — so a setting
// or a message that crashes it cannot keep it rebooting (and switching its
// relays) forever. Uses RTC memory only: no flash writes.
class BootGuard {
 public:
  explicit BootGuard(Scratch& scratch) : scratch_(scratch) {}
  // At boot. powerOn: the reset reason is a power-on (RTC memory holds
  // garbage then, and a power cut is not a crash). True = safe mode.
  bool Boot(bool powerOn);
  // Every loop(): clears the count once the board has run long enough.
  void Tick(uint32_t now);
  uint32_t unstable_boots() const { return count_; }

 private:
  void Store();
  Scratch& scratch_;
  uint32_t count_ = 0;
  bool cleared_ = false;
};

// --- status LED ------------------------------------------------------

// The on-board LED: lit while subscribed; blinking fast (5 Hz) while
// eventrelay's TLS key is refused — it is not the pinned one, which only a
// person can settle (a new pin on the setup page, or the old key back on
// eventrelay); dark otherwise (connecting, waiting, no Wi-Fi).
bool StatusLedLit(bool subscribed, bool keyRefused, uint32_t now);

// --- status page -----------------------------------------------------

// What the read-only LAN status page shows.
struct StatusView {
  const char* firmware;      // version string
  const char* device;        // the name sent as device= (DeviceId); nullptr none
  const char* state;         // "subscribed", "connecting", "waiting", "no Wi-Fi", "safe mode", ...
  const char* mid;           // last mid ("" none)
  const char* last_device;   // last relay command's device ("" none); from the network: escaped
  bool last_on;
  uint32_t uptime_s;
  const char* reset_reason;  // the SDK's text
  uint32_t free_heap;
  uint32_t connects, renewals, gaps, rejected, silences;
  bool secure;               // wss:// with a pinned key, else plain ws://
  const char* pin;           // fingerprint of the pinned key ("sha256//..."), nullptr none
  const char* key_kind;      // "EC P-256", "RSA-2048", ...
  bool key_refused;          // the last TLS attempt met another key
  uint32_t key_refusals;
  uint32_t tls_rx_bytes;     // the TLS receive buffer of the next connection (0: not shown)
  uint32_t tls_too_large;    // TLS records that did not fit the smaller buffer
  uint8_t relay_count;
  const char* relay_names[ISOBOX_FW_RELAYS_MAX];
  bool relay_on[ISOBOX_FW_RELAYS_MAX];
};

// Renders the page as HTML into out (NUL-terminated); returns its length,
// or 0 if it does not fit in cap. Every string is HTML-escaped. It shows
// no secret: no Wi-Fi password, no channel id, no AP password. The pinned
// key is public; its fingerprint is shown.
size_t RenderStatus(const StatusView& v, char* out, size_t cap);

}  // namespace isobox

#endif  // ISOBOX_FW_DEVICE_H
