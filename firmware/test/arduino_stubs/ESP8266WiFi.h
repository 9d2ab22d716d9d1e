#pragma once
#include <Arduino.h>
enum WiFiMode_t { WIFI_OFF, WIFI_STA, WIFI_AP, WIFI_AP_STA };
enum wl_status_t { WL_IDLE_STATUS, WL_CONNECTED = 3 };
// libraries/ESP8266WiFi/src/WiFiClient.h (connect() is virtual through
// cores/esp8266/Client.h, which the pinned TLS client overrides).
class WiFiClient {
 public:
  virtual ~WiFiClient();
  virtual int connect(IPAddress ip, uint16_t port);
  virtual int connect(const char* host, uint16_t port);
  virtual int connect(const String& host, uint16_t port);
  virtual uint8_t connected();
  virtual void stop();
  IPAddress localIP();
};
struct ESP8266WiFiClass {
  void persistent(bool);
  bool mode(WiFiMode_t);
  bool setAutoReconnect(bool);
  wl_status_t begin(const char*, const char*);
  wl_status_t status();
  bool softAP(const char*, const char*);
  bool softAPdisconnect(bool);
  IPAddress softAPIP();
  int8_t scanNetworks();
  String SSID(uint8_t);
  uint8_t* macAddress(uint8_t* mac);  // the station MAC
};
extern ESP8266WiFiClass WiFi;
