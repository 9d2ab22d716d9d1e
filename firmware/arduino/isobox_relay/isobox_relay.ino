// isobox LAN relay for the ESP8266: follows the boxed Bitrix24 portal's
// Push & Pull channel served by isobox eventrelay on the LAN and switches
// relays on `esp` / `relay` commands, with no internet and no cloud.
//
// Everything protocol- or state-related is in the portable core
// (firmware/core, an Arduino library); this sketch only joins Wi-Fi, runs
// the setup access point, and wires the board into the core's ports.
// Build: see firmware/README.md (arduino-cli, ESP8266 core, WebSockets lib).

#include <ESP8266WebServer.h>
#include <ESP8266WiFi.h>
#include <isobox_core.h>

#include "esp8266_ports.h"
#include "setup_portal.h"

// Board wiring; override with --build-property "compiler.cpp.extra_flags=-D...".
#ifndef ISOBOX_SETUP_BUTTON_PIN
#define ISOBOX_SETUP_BUTTON_PIN 13  // D7, to GND: hold at power-up for the setup AP
#endif
#ifndef ISOBOX_STATUS_LED_PIN
#define ISOBOX_STATUS_LED_PIN 2  // on-board LED (active low): lit while subscribed
#endif
// The setup AP closes again this long after the page was last used, once
// the board is configured and on Wi-Fi. It never opens because Wi-Fi is
// lost: only unconfigured, in safe mode, or with the button held.
#ifndef ISOBOX_PORTAL_IDLE_MS
#define ISOBOX_PORTAL_IDLE_MS 600000ul
#endif
#ifndef ISOBOX_FIRMWARE_VERSION
#define ISOBOX_FIRMWARE_VERSION "0.3.0"
#endif

namespace {

board::Clock clock_;
board::Random random_;
board::Pins pins_;
board::Storage storage_;
board::Transport transport_;
isobox::RelayBank relays_(pins_);
isobox::Settings settings_;

char last_device_[ISOBOX_FW_NAME_MAX + 1];  // the last relay command, for the status page
bool last_on_ = false;
bool any_command_ = false;

// Persists a renewed channel id: after a reboot the expired one is useless.
// About two flash writes a day (channels live 12 h), and only when the id
// really changes.
class Persist : public isobox::LinkListener {
 public:
  void OnChannelRenewed(const char* channel) override {
    strncpy(settings_.channel, channel, sizeof settings_.channel - 1);
    int r = isobox::SaveIfChanged(storage_, settings_);
    Serial.printf_P(PSTR("channel renewed, saved=%d\n"), r);
  }
  void OnRelayCommand(const char* device, bool on, uint8_t changed) override {
    strncpy(last_device_, device, sizeof last_device_ - 1);
    last_on_ = on;
    any_command_ = true;
    Serial.printf_P(on ? PSTR("relay '%s' -> on (%u switched)\n") : PSTR("relay '%s' -> off (%u switched)\n"), device,
                    static_cast<unsigned>(changed));
  }
};
// The RTC user memory (survives a reset, not a power cut) for the boot-loop
// guard. Its first 128 bytes hold the core's eboot command (OTA, see
// cores/esp8266/eboot_command.h, which maps to user block 0): ours start
// after it.
class RtcScratch : public isobox::Scratch {
 public:
  static constexpr uint32_t kBlock = 32;  // 4-byte blocks: byte 128 of user memory
  bool Read(uint8_t* out, size_t n) override {
    uint32_t w[4];
    if (n > sizeof w || !ESP.rtcUserMemoryRead(kBlock, w, sizeof w)) return false;
    memcpy(out, w, n);
    return true;
  }
  bool Write(const uint8_t* data, size_t n) override {
    uint32_t w[4] = {};
    if (n > sizeof w) return false;
    memcpy(w, data, n);
    return ESP.rtcUserMemoryWrite(kBlock, w, sizeof w);
  }
};

bool safe_mode_ = false;
Persist persist_;
isobox::Link link_(clock_, random_, transport_, relays_, &persist_);
RtcScratch rtc_;
isobox::BootGuard guard_(rtc_);
isobox::ButtonHold button_;
char ap_password_[13];
char device_id_[isobox::kDeviceIdSize];  // sent as device=: eventrelay's devices page keys the board by it
char pin_fingerprint_[isobox::kFingerprintSize];  // of settings_.pin, for the status page
char key_kind_[16];
const char* key_kind_text_ = nullptr;

// The state sentence, in flash (PSTR): copy it out with strncpy_P.
PGM_P StateText() {
  if (safe_mode_) return PSTR("safe mode (boot loop): setup only");
  if (link_.key_refused() && link_.state() != isobox::Link::State::kOpen)
    return PSTR("refused: eventrelay's TLS key is not the pinned one (new pin on the setup page, or the old key back)");
  switch (link_.state()) {
    case isobox::Link::State::kOpen: return PSTR("subscribed");
    case isobox::Link::State::kConnecting: return PSTR("connecting");
    case isobox::Link::State::kWaiting: return PSTR("waiting to reconnect");
    case isobox::Link::State::kIdle: break;
  }
  return PSTR("no Wi-Fi");
}
const char kFirmwareVersion[] PROGMEM = ISOBOX_FIRMWARE_VERSION;

size_t Status(char* out, size_t cap) {
  isobox::StatusView v{};
  static String reason;  // lives while the page is rendered
  reason = ESP.getResetReason();
  // RenderStatus reads plain RAM strings: the flash ones are copied to the
  // stack for the page's rendering (no static DRAM).
  char firmware[sizeof kFirmwareVersion];
  strcpy_P(firmware, kFirmwareVersion);
  char state[112];
  strncpy_P(state, StateText(), sizeof state - 1);
  state[sizeof state - 1] = '\0';
  v.firmware = firmware;
  v.device = device_id_[0] != '\0' ? device_id_ : nullptr;
  v.state = state;
  v.mid = link_.last_mid();
  v.last_device = any_command_ ? last_device_ : nullptr;
  v.last_on = last_on_;
  v.uptime_s = millis() / 1000;
  v.reset_reason = reason.c_str();
  v.free_heap = ESP.getFreeHeap();
  v.connects = link_.stats().connects;
  v.renewals = link_.stats().renewals;
  v.gaps = link_.stats().gaps;
  v.rejected = link_.stats().rejected;
  v.silences = link_.stats().silences;
  v.secure = link_.secure();
  v.pin = settings_.pin_len > 0 ? pin_fingerprint_ : nullptr;
  v.key_kind = key_kind_text_;
  v.key_refused = link_.key_refused();
  v.key_refusals = link_.stats().key_refusals;
#if defined(ISOBOX_PINNED_TLS)
  v.tls_rx_bytes = isobox_board::TlsState().fallback ? ISOBOX_TLS_RX_FALLBACK_BYTES : ISOBOX_TLS_RX_BYTES;
  v.tls_too_large = isobox_board::TlsState().too_large;
#endif
  v.relay_count = relays_.count();
  for (uint8_t i = 0; i < relays_.count(); ++i) {
    v.relay_names[i] = relays_.spec(i).name;
    v.relay_on[i] = relays_.state(i);
  }
  return isobox::RenderStatus(v, out, cap);
}

SetupPortal portal_(storage_, settings_, Status);

bool configured_ = false;
bool forced_portal_ = false;
bool net_up_ = false;
uint32_t net_changed_ms_ = 0;

void OpenPortal() {
  WiFi.mode(configured_ ? WIFI_AP_STA : WIFI_AP);  // the saved network is kept meanwhile
  portal_.Start(configured_, ap_password_);
}

}  // namespace

// Where the per-device secret lives: the end of the EEPROM sector, apart
// from the settings image (which starts at 0).
constexpr size_t kSecretOffset = board::Storage::kSize - isobox::kSecretImageSize;
static_assert(isobox::kSettingsImageSize <= kSecretOffset, "settings and secret overlap");

void setup() {
  Serial.begin(115200);
  pinMode(ISOBOX_SETUP_BUTTON_PIN, INPUT_PULLUP);
  pinMode(ISOBOX_STATUS_LED_PIN, OUTPUT);
  digitalWrite(ISOBOX_STATUS_LED_PIN, HIGH);
  storage_.Begin();
  safe_mode_ = guard_.Boot(ESP.getResetInfoPtr()->reason == REASON_DEFAULT_RST);

  // The setup AP's password: this board's own, from a secret made once.
  uint8_t secret[isobox::kSecretLen];
  bool created = false;
  if (!isobox::LoadOrCreateSecret(storage_, kSecretOffset, random_, secret, &created)) {
    Serial.printf_P(PSTR("flash: the device secret could not be written; the AP password changes at every boot\n"));
  }
  isobox::ApPassword(ESP.getChipId(), secret, ap_password_);
  Serial.printf_P(PSTR("setup AP isobox-relay-%06x password %s\n"), static_cast<unsigned>(ESP.getChipId()), ap_password_);

  // Boot only reads the flash (the secret above is written once in the
  // board's life). The SDK also writes Wi-Fi credentials unless persistent(false).
  WiFi.persistent(false);
  bool loaded = isobox::LoadSettings(storage_, &settings_);
  for (uint8_t i = 0; loaded && !safe_mode_ && i < settings_.relay_count; ++i) {
    const isobox::RelaySpec& r = settings_.relays[i];
    relays_.Add(r.name, r.pin, r.activeLow, r.onAtBoot);
  }
  relays_.Begin();  // every relay off until a command says otherwise
  bool secure = settings_.tls == isobox::kPinnedWss;
  char transport_why[isobox::kPinErrorTextSize];
  const char* transport_error = loaded ? isobox::CheckTransport(settings_, transport_why, sizeof transport_why) : nullptr;
  if (transport_error != nullptr) Serial.printf_P(PSTR("settings: %s\n"), transport_error);
  if (settings_.pin_len > 0) {
    isobox::PinFingerprint(settings_.pin, settings_.pin_len, pin_fingerprint_);
    isobox::KeyInfo info;
    if (isobox::CheckSpki(settings_.pin, settings_.pin_len, &info) == isobox::PinError::kOk)
      key_kind_text_ = isobox::KeyKindText(info, key_kind_, sizeof key_kind_);
    Serial.printf_P(PSTR("eventrelay key pinned: %s\n"), pin_fingerprint_);
  }
  uint8_t mac[6];
  if (isobox::DeviceId(WiFi.macAddress(mac), device_id_)) link_.SetDeviceId(device_id_);
  if (device_id_[0] != '\0') Serial.printf_P(PSTR("device name %s\n"), device_id_);
  else Serial.printf_P(PSTR("device name (MAC not read: none sent)\n"));
  configured_ = !safe_mode_ && loaded && settings_.ssid[0] != '\0' && relays_.count() > 0 &&
                transport_error == nullptr &&
                link_.Configure(settings_.host, settings_.port, settings_.channel,
                                settings_.replay_from_start != 0, secure);
  transport_.Attach(&link_);
  transport_.SetPin(settings_.pin, settings_.pin_len);  // wss:// meets only this key
  portal_.Begin();

  forced_portal_ = safe_mode_ || digitalRead(ISOBOX_SETUP_BUTTON_PIN) == LOW;
  if (configured_) {
    WiFi.mode(WIFI_STA);
    WiFi.setAutoReconnect(true);
    WiFi.begin(settings_.ssid, settings_.pass);
  }
  if (!configured_ || forced_portal_) OpenPortal();
  char firmware_version[sizeof kFirmwareVersion];
  strcpy_P(firmware_version, kFirmwareVersion);
  Serial.printf_P(PSTR("isobox relay %s: configured=%d relays=%u safe_mode=%d\n"), firmware_version, configured_,
                static_cast<unsigned>(relays_.count()), safe_mode_);
}

void loop() {
  uint32_t now = millis();
  guard_.Tick(now);
  bool up = configured_ && WiFi.status() == WL_CONNECTED;
  if (up != net_up_) {
    net_up_ = up;
    net_changed_ms_ = now;
    link_.SetNetwork(up);
    Serial.printf_P(up ? PSTR("wifi up\n") : PSTR("wifi down\n"));
  }
  transport_.Loop();
  link_.Tick();
  // Active low: lit while subscribed, blinking fast while the key is refused.
  bool lit = isobox::StatusLedLit(link_.state() == isobox::Link::State::kOpen, link_.key_refused(), now);
  digitalWrite(ISOBOX_STATUS_LED_PIN, lit ? LOW : HIGH);

  // The button held 5 s opens the setup AP; Wi-Fi loss never does.
  if (button_.Update(digitalRead(ISOBOX_SETUP_BUTTON_PIN) == LOW, now) && !portal_.running()) {
    forced_portal_ = false;  // closes again when idle
    OpenPortal();
  }
  portal_.Loop();
  if (portal_.running() && configured_ && net_up_ && !forced_portal_ &&
      portal_.IdleMs() >= ISOBOX_PORTAL_IDLE_MS) {
    portal_.Stop();
    WiFi.mode(WIFI_STA);
  }
}
