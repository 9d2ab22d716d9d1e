#pragma once
#include <ESP8266WiFi.h>
// Signatures as in the ESP8266 core's libraries/DNSServer/src/DNSServer.h.
class DNSServer {
 public:
  bool start(const uint16_t& port, const String& domainName, const IPAddress& resolvedIP);
  void processNextRequest();
  void stop();
};
