#pragma once
#include <ESP8266WiFi.h>
enum HTTPMethod { HTTP_ANY, HTTP_GET, HTTP_POST };
class ESP8266WebServer {
 public:
  explicit ESP8266WebServer(int port);
  // libraries/ESP8266WebServer: on(const Uri&, ...), Uri from a RAM or a flash string.
  struct Uri {
    Uri(const char*);
    Uri(const __FlashStringHelper*);
  };
  void on(const Uri&, HTTPMethod, std::function<void()>);
  void onNotFound(std::function<void()>);
  void begin();
  void stop();
  void handleClient();
  const String& arg(const String& name) const;
  WiFiClient& client();
  void send(int, const char*, const char*);
  void send(int, const char*, const String&);
  void send_P(int code, PGM_P content_type, PGM_P content);
  void send_P(int code, PGM_P content_type, PGM_P content, size_t content_length);
};
