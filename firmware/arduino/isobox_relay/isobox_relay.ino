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
// Wi-Fi down this long opens the setup AP beside the saved network (which
// keeps being retried: the portal is offered in parallel, never instead).
#ifndef ISOBOX_PORTAL_AFTER_MS
#define ISOBOX_PORTAL_AFTER_MS 60000ul
#endif
// The fallback AP closes again this long after Wi-Fi is back and the page is idle.
#ifndef ISOBOX_PORTAL_IDLE_MS
#define ISOBOX_PORTAL_IDLE_MS 300000ul
#endif

namespace {

board::Clock clock_;
board::Random random_;
board::Pins pins_;
board::Storage storage_;
board::Transport transport_;
isobox::RelayBank relays_(pins_);
isobox::Settings settings_;

// Persists a renewed channel id: after a reboot the expired one is useless.
// About two flash writes a day (channels live 12 h), and only when the id
// really changes.
class Persist : public isobox::LinkListener {
 public:
  void OnChannelRenewed(const char* channel) override {
    strncpy(settings_.channel, channel, sizeof settings_.channel - 1);
    int r = isobox::SaveIfChanged(storage_, settings_);
    Serial.printf("channel renewed, saved=%d\n", r);
  }
  void OnRelayCommand(const char* device, bool on, uint8_t changed) override {
    Serial.printf("relay '%s' -> %s (%u switched)\n", device, on ? "on" : "off", static_cast<unsigned>(changed));
  }
};
Persist persist_;
isobox::Link link_(clock_, random_, transport_, relays_, &persist_);
SetupPortal portal_(storage_, settings_);

bool configured_ = false;
bool forced_portal_ = false;
bool net_up_ = false;
uint32_t net_changed_ms_ = 0;

}  // namespace

void setup() {
  Serial.begin(115200);
  pinMode(ISOBOX_SETUP_BUTTON_PIN, INPUT_PULLUP);
  pinMode(ISOBOX_STATUS_LED_PIN, OUTPUT);
  digitalWrite(ISOBOX_STATUS_LED_PIN, HIGH);
  storage_.Begin();

  // Boot only reads the flash. (The blog post's sketch rewrote it on every
  // boot and Wi-Fi join; the SDK does the same with Wi-Fi credentials
  // unless persistent(false).)
  WiFi.persistent(false);
  bool loaded = isobox::LoadSettings(storage_, &settings_);
  for (uint8_t i = 0; loaded && i < settings_.relay_count; ++i) {
    const isobox::RelaySpec& r = settings_.relays[i];
    relays_.Add(r.name, r.pin, r.activeLow);
  }
  relays_.Begin();  // every relay off until a command says otherwise
  configured_ = loaded && settings_.ssid[0] != '\0' && relays_.count() > 0 &&
                link_.Configure(settings_.host, settings_.port, settings_.channel,
                                settings_.replay_from_start != 0);
  transport_.Attach(&link_);

  forced_portal_ = digitalRead(ISOBOX_SETUP_BUTTON_PIN) == LOW;
  if (configured_) {
    WiFi.mode(forced_portal_ ? WIFI_AP_STA : WIFI_STA);
    WiFi.setAutoReconnect(true);
    WiFi.begin(settings_.ssid, settings_.pass);
  }
  if (!configured_ || forced_portal_) portal_.Start(configured_);
  Serial.printf("isobox relay: configured=%d relays=%u\n", configured_, static_cast<unsigned>(relays_.count()));
}

void loop() {
  uint32_t now = millis();
  bool up = configured_ && WiFi.status() == WL_CONNECTED;
  if (up != net_up_) {
    net_up_ = up;
    net_changed_ms_ = now;
    link_.SetNetwork(up);
    Serial.printf("wifi %s\n", up ? "up" : "down");
  }
  transport_.Loop();
  link_.Tick();
  digitalWrite(ISOBOX_STATUS_LED_PIN, link_.state() == isobox::Link::State::kOpen ? LOW : HIGH);

  if (portal_.running()) {
    portal_.Loop();
    if (configured_ && net_up_ && !forced_portal_ && now - net_changed_ms_ >= ISOBOX_PORTAL_IDLE_MS &&
        portal_.IdleMs() >= ISOBOX_PORTAL_IDLE_MS) {
      portal_.Stop();
      WiFi.mode(WIFI_STA);
    }
  } else if (configured_ && !net_up_ && now - net_changed_ms_ >= ISOBOX_PORTAL_AFTER_MS) {
    WiFi.mode(WIFI_AP_STA);  // keep retrying the saved network meanwhile
    portal_.Start(true);
  }
}
