// The setup access point: a one-page form for Wi-Fi, the eventrelay
// address, the signed channel id and the relay list. Served only on the
// AP interface, never to the LAN; secrets are write-only (left empty =
// keep); saving writes the flash only if something changed, then reboots.
#pragma once

#include <ESP8266WebServer.h>
#include <ESP8266WiFi.h>
#include <isobox_core.h>

#ifndef ISOBOX_AP_PASSWORD
#define ISOBOX_AP_PASSWORD "isobox-setup"  // WPA2; change it for your build (8+ chars)
#endif

class SetupPortal {
 public:
  SetupPortal(isobox::Storage& storage, isobox::Settings& settings)
      : storage_(storage), settings_(settings), server_(80) {}

  void Start(bool configured);
  void Stop();
  void Loop();
  bool running() const { return running_; }
  uint32_t IdleMs() const { return millis() - last_request_ms_; }

 private:
  bool FromAp();
  void HandleRoot();
  void HandleSave();
  void SendPage(int status, const char* note);

  isobox::Storage& storage_;
  isobox::Settings& settings_;
  ESP8266WebServer server_;
  bool running_ = false;
  bool routes_ = false;
  bool configured_ = false;
  uint32_t last_request_ms_ = 0;
};
