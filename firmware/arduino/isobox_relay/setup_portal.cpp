#include "setup_portal.h"

// Every constant string here is in flash (F, PSTR, PROGMEM): on the chip
// .rodata is copied to DRAM at boot. Flash is read only through the core's
// _P functions and pgm_read_byte (aligned 32-bit loads; a plain byte load
// from flash faults), which also read RAM, so send_P takes either.
namespace {

const char kHtml[] PROGMEM = "text/html; charset=utf-8";
const char kText[] PROGMEM = "text/plain";

void AppendEscapedChar(String& out, char c) {
  switch (c) {
    case '&': out += F("&amp;"); break;
    case '<': out += F("&lt;"); break;
    case '>': out += F("&gt;"); break;
    case '"': out += F("&quot;"); break;
    case '\'': out += F("&#39;"); break;
    default: out += c;
  }
}

void AppendEscaped(String& out, const char* s) {
  for (; *s; ++s) AppendEscapedChar(out, *s);
}

// The same for a string in flash.
void AppendEscaped(String& out, const __FlashStringHelper* f) {
  PGM_P p = reinterpret_cast<PGM_P>(f);
  for (char c = static_cast<char>(pgm_read_byte(p)); c != '\0'; c = static_cast<char>(pgm_read_byte(++p)))
    AppendEscapedChar(out, c);
}

// True if a form value is exactly this one character.
bool Is(const String& v, char c) { return v.length() == 1 && v.c_str()[0] == c; }

// Copies a form field into a fixed buffer; false if it does not fit.
bool Field(ESP8266WebServer& server, const __FlashStringHelper* name, char* out, size_t cap) {
  String v = server.arg(name);
  if (v.length() >= cap) return false;
  strcpy(out, v.c_str());
  return true;
}

}  // namespace

void SetupPortal::Begin() {
  server_.on(F("/"), HTTP_GET, [this] { HandleRoot(); });
  server_.on(F("/"), HTTP_POST, [this] { HandleSave(); });
  // Captive portal: phones probe some URL first; on the AP every path is the form.
  server_.onNotFound([this] { HandleRoot(); });
  server_.begin();
}

void SetupPortal::Start(bool configured, const char* password) {
  configured_ = configured;
  char ssid[32];
  snprintf_P(ssid, sizeof ssid, PSTR("isobox-relay-%06x"), static_cast<unsigned>(ESP.getChipId()));
  WiFi.softAP(ssid, password);
  dns_.start(53, F("*"), WiFi.softAPIP());
  running_ = true;
  last_request_ms_ = millis();
  Serial.printf_P(PSTR("setup AP %s at %s\n"), ssid, WiFi.softAPIP().toString().c_str());
}

void SetupPortal::Stop() {
  dns_.stop();
  WiFi.softAPdisconnect(true);
  running_ = false;
}

void SetupPortal::Loop() {
  if (running_) dns_.processNextRequest();
  server_.handleClient();
}

bool SetupPortal::FromAp() { return running_ && server_.client().localIP() == WiFi.softAPIP(); }

void SetupPortal::HandleRoot() {
  if (!FromAp()) {
    // The LAN (station interface) only ever sees the read-only status page.
    static char page[2048];
    size_t n = status_ ? status_(page, sizeof page) : 0;
    if (n == 0) {
      server_.send_P(500, kText, PSTR("status page too large"));
      return;
    }
    server_.send_P(200, kHtml, page, n);
    return;
  }
  last_request_ms_ = millis();
  SendPage(200);
}

void SetupPortal::SendPage(int status, const __FlashStringHelper* note, const char* detail) {
  String html;
  html.reserve(2048);
  html += F("<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            "<title>isobox relay</title><h1>isobox relay</h1>");
  if (note != nullptr || detail != nullptr) {
    html += F("<p><b>");
    if (note != nullptr) AppendEscaped(html, note);
    if (detail != nullptr) AppendEscaped(html, detail);
    html += F("</b></p>");
  }
  html += F("<form method=post>Wi-Fi network<br><input name=ssid list=nets maxlength=32 value='");
  AppendEscaped(html, settings_.ssid);
  html += F("'><datalist id=nets>");
  int8_t found = WiFi.scanNetworks();  // blocking, about 2 s
  for (int8_t i = 0; i < found && i < 20; ++i) {
    html += F("<option value='");
    AppendEscaped(html, WiFi.SSID(static_cast<uint8_t>(i)).c_str());
    html += F("'>");
  }
  html += F("</datalist><br>Wi-Fi password (empty = keep)<br><input name=pass type=password maxlength=64>"
            "<br>eventrelay host<br><input name=host maxlength=63 value='");
  AppendEscaped(html, settings_.host);
  html += F("'><br>eventrelay port<br><input name=port type=number min=1 max=65535 value='");
  html += settings_.port != 0 ? settings_.port : 8090;
  html += F("'><br>signed channel id (empty = keep)<br><input name=channel maxlength=194 size=60>"
            "<br>relays: name:gpio[:low][:on], comma-separated (e.g. pump:12:on = on at power-up)<br><input name=relays value='");
  for (uint8_t i = 0; i < settings_.relay_count; ++i) {
    if (i > 0) html += ',';
    AppendEscaped(html, settings_.relays[i].name);
    html += ':';
    html += settings_.relays[i].pin;
    if (settings_.relays[i].activeLow) html += F(":low");
    if (settings_.relays[i].onAtBoot) html += F(":on");
  }
  // Transport: wss:// with the pinned key unless plain ws:// is chosen
  // (preselected only for a board already set to it, e.g. from a pre-TLS image).
  bool tls = settings_.ssid[0] == '\0' || settings_.tls == isobox::kPinnedWss;
  html += F("'><br>connection to eventrelay<br><label><input type=radio name=tls value=1");
  if (tls) html += F(" checked");
  html += F("> wss:// (TLS) with eventrelay's pinned public key</label><br><label><input type=radio name=tls value=0");
  if (!tls) html += F(" checked");
  html += F("> plain ws:// (unencrypted: anyone on the LAN segment can read the channel id and forge commands)</label>"
            "<br>eventrelay public key, as `authprovider tls pin --cert FILE` prints it (empty = keep");
  if (settings_.pin_len > 0) {
    char fp[isobox::kFingerprintSize];
    isobox::PinFingerprint(settings_.pin, settings_.pin_len, fp);
    html += F("; now ");
    html += fp;
  }
  html += F(")<br><textarea name=pin rows=4 cols=64 maxlength=1024></textarea>");
  html += F("<br><label><input type=checkbox name=replay value=1");
  if (settings_.replay_from_start) html += F(" checked");
  html += F("> restore relays from the channel's history after a power cut</label>"
            "<br><button>Save and restart</button></form>");
  server_.send_P(status, kHtml, html.c_str(), html.length());
}

void SetupPortal::HandleSave() {
  if (!FromAp()) {
    server_.send_P(403, kText, PSTR("setup is only served on the relay's own access point, opened with the button"));
    return;
  }
  last_request_ms_ = millis();
  isobox::Settings next = settings_;  // secrets left empty keep their value
  char pass[sizeof next.pass] = {};
  char channel[sizeof next.channel] = {};
  long port = server_.arg(F("port")).toInt();
  if (!Field(server_, F("ssid"), next.ssid, sizeof next.ssid) || next.ssid[0] == '\0' ||
      !Field(server_, F("pass"), pass, sizeof pass) || !Field(server_, F("host"), next.host, sizeof next.host) ||
      !Field(server_, F("channel"), channel, sizeof channel) || port < 1 || port > 65535) {
    SendPage(400, F("A field is empty or too long."));
    return;
  }
  if (pass[0] != '\0') strcpy(next.pass, pass);
  if (channel[0] != '\0') strcpy(next.channel, channel);
  next.port = static_cast<uint16_t>(port);
  next.replay_from_start = Is(server_.arg(F("replay")), '1') ? 1 : 0;
  String tls = server_.arg(F("tls"));
  if (!Is(tls, '0') && !Is(tls, '1')) {
    SendPage(400, F("Choose wss:// (TLS) or plain ws://."));
    return;
  }
  next.tls = Is(tls, '1') ? isobox::kPinnedWss : isobox::kPlainWs;
  String pinText = server_.arg(F("pin"));
  pinText.trim();
  if (pinText.length() > 0) {
    size_t n = 0;
    isobox::KeyInfo info;
    isobox::PinError e = isobox::ParsePin(pinText.c_str(), next.pin, sizeof next.pin, &n, &info);
    if (e != isobox::PinError::kOk) {
      char why[isobox::kPinErrorTextSize];
      SendPage(400, F("eventrelay public key: "), isobox::PinErrorText(e, why, sizeof why));
      return;
    }
    next.pin_len = static_cast<uint16_t>(n);
  }
  char transport_why[isobox::kPinErrorTextSize];
  if (const char* why = isobox::CheckTransport(next, transport_why, sizeof transport_why)) {
    SendPage(400, nullptr, why);
    return;
  }
  char url[ISOBOX_FW_URL_MAX + 1];
  if (isobox::BuildSubscribeUrl(isobox::Endpoint{next.host, next.port, next.tls == isobox::kPinnedWss}, next.channel,
                                nullptr, url, sizeof url) == 0) {
    SendPage(400, F("The host or the signed channel id (<32 hex>.<signature>) is not valid."));
    return;
  }
  if (!isobox::ParseRelayList(server_.arg(F("relays")).c_str(), &next)) {
    SendPage(400, F("The relay list is not valid."));
    return;
  }
  int written = isobox::SaveIfChanged(storage_, next);
  if (written < 0) {
    SendPage(500, F("The flash could not be written."));
    return;
  }
  settings_ = next;
  server_.send_P(200, kText, written ? PSTR("saved, restarting") : PSTR("unchanged, restarting"));
  delay(500);
  ESP.restart();
}
