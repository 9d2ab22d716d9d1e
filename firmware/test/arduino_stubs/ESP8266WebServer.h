#pragma once
#include <ESP8266WiFi.h>
enum HTTPMethod { HTTP_ANY, HTTP_GET, HTTP_POST };
class ESP8266WebServer {
 public:
  explicit ESP8266WebServer(int port);
  void on(const char*, HTTPMethod, std::function<void()>);
  void onNotFound(std::function<void()>);
  void begin();
  void stop();
  void handleClient();
  String arg(const char*);
  WiFiClient& client();
  void send(int, const char*, const char*);
  void send(int, const char*, const String&);
};
