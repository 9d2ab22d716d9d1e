#pragma once
// Links2004/arduinoWebSockets src/WebSockets.h at 175e80f1, the ESP8266
// branch: the library's TLS client class (a macro that
// arduino/websockets_pinned_tls.h re-points) and HAS_SSL.
#include <ESP8266WiFi.h>
#include <WiFiClientSecureBearSSL.h>
#define WEBSOCKETS_NETWORK_CLASS WiFiClient
#define WEBSOCKETS_NETWORK_SSL_CLASS WiFiClientSecure
#define HAS_SSL
using BearSSL::WiFiClientSecure;  // the core's ESP8266WiFi.h: using namespace BearSSL
