// The board's web server on port 80. On the board's own setup access point
// (opened only when the board is unconfigured, in safe mode, or the button
// is held) it serves a one-page form for Wi-Fi, the eventrelay address,
// the signed channel id, wss:// with eventrelay's pinned public key or
// plain ws:// (an explicit choice), and the relay list, with a network scan and a
// captive-portal DNS that sends every name to the form. On the LAN it
// serves only the read-only status page. Secrets are write-only (left empty
// = keep); saving writes the flash only if something changed, then reboots.
#pragma once

#include <DNSServer.h>
#include <ESP8266WebServer.h>
#include <ESP8266WiFi.h>
#include <isobox_core.h>

#include <functional>

class SetupPortal {
 public:
  // Renders the status page into a buffer (isobox::RenderStatus).
  using StatusFn = std::function<size_t(char* out, size_t cap)>;

  SetupPortal(isobox::Storage& storage, isobox::Settings& settings, StatusFn status)
      : storage_(storage), settings_(settings), status_(status), server_(80) {}

  // Starts the web server (status page on the LAN); call once.
  void Begin();
  // Opens the setup AP with this board's password.
  void Start(bool configured, const char* password);
  void Stop();
  void Loop();
  bool running() const { return running_; }
  uint32_t IdleMs() const { return millis() - last_request_ms_; }

 private:
  bool FromAp();
  void HandleRoot();
  void HandleSave();
  // The note (flash) and its detail (RAM) are shown escaped above the form.
  void SendPage(int status, const __FlashStringHelper* note = nullptr, const char* detail = nullptr);

  isobox::Storage& storage_;
  isobox::Settings& settings_;
  StatusFn status_;
  ESP8266WebServer server_;
  DNSServer dns_;
  bool running_ = false;
  bool configured_ = false;
  uint32_t last_request_ms_ = 0;
};
