#pragma once
#include <Arduino.h>
#include <WebSockets.h>
// Signatures as in Links2004/arduinoWebSockets src/WebSocketsClient.h.
enum WStype_t {
  WStype_ERROR, WStype_DISCONNECTED, WStype_CONNECTED, WStype_TEXT, WStype_BIN,
  WStype_FRAGMENT_TEXT_START, WStype_FRAGMENT_BIN_START, WStype_FRAGMENT, WStype_FRAGMENT_FIN,
  WStype_PING, WStype_PONG
};
class WebSocketsClient {
 public:
  typedef std::function<void(WStype_t type, uint8_t* payload, size_t length)> WebSocketClientEvent;
  void begin(const char* host, uint16_t port, const char* url = "/", const char* protocol = "arduino");
  void beginSSL(const char* host, uint16_t port, const char* url = "/", const char* fingerprint = "",
                const char* protocol = "arduino");
  void beginSSL(const char* host, uint16_t port, const char* url = "/", const uint8_t* fingerprint = NULL,
                const char* protocol = "arduino");
  void loop();
  void onEvent(WebSocketClientEvent cbEvent);
  void disconnect();
  void setReconnectInterval(unsigned long time);
  void enableHeartbeat(uint32_t pingInterval, uint32_t pongTimeout, uint8_t disconnectTimeoutCount);
};
