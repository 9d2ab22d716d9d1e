// A host build of the client API of Links2004/arduinoWebSockets
// (src/WebSocketsClient.h, release 2.7.x) for the firmware's tests. It
// reproduces the library's connection bookkeeping exactly — begin() zeroing
// _lastConnectionFail, loop()'s early return while
// millis() - _lastConnectionFail < _reconnectInterval, a failed TCP connect
// that fires no event and leaves its socket for the next loop() to clean up
// (WStype_DISCONNECTED "TCP connection cleanup"), clientDisconnect setting
// _lastConnectionFail and firing WStype_DISCONNECTED, begin() dropping (not
// freeing) a previous socket, disconnect() acting only on a connected or
// dead socket, the 5 s header timeout, the heartbeat, the 15 KiB frame
// limit (close 1009) — over a socket the test chooses (HostNet): a scripted
// one for unit tests or a real POSIX socket for the end-to-end test. The
// handshake and RFC 6455 framing are real (Sec-WebSocket-Accept checked,
// frames masked); only the byte I/O is buffered and non-blocking instead of
// the library's blocking reads.
//
// The names of the members the library's bookkeeping lives in are the
// library's, so the tests can state facts about them.
#ifndef ISOBOX_FW_TEST_WS_HOST_H
#define ISOBOX_FW_TEST_WS_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <functional>
#include <string>

// The Arduino clock the library reads; the test binary defines it.
unsigned long millis();

#ifndef WEBSOCKETS_MAX_DATA_SIZE  // the library's value on the ESP8266
#define WEBSOCKETS_MAX_DATA_SIZE (15 * 1024)
#endif
#define WEBSOCKETS_TCP_TIMEOUT (5000)
// The library has a TLS client on the ESP8266 (WEBSOCKETS_NETWORK_SSL_CLASS,
// BearSSL's WiFiClientSecure): so does this reproduction (ssl_factory).
#define HAS_SSL

typedef enum { WSC_NOT_CONNECTED, WSC_HEADER, WSC_BODY, WSC_CONNECTED } WSclientsStatus_t;

typedef enum {
  WStype_ERROR,
  WStype_DISCONNECTED,
  WStype_CONNECTED,
  WStype_TEXT,
  WStype_BIN,
  WStype_FRAGMENT_TEXT_START,
  WStype_FRAGMENT_BIN_START,
  WStype_FRAGMENT,
  WStype_FRAGMENT_FIN,
  WStype_PING,
  WStype_PONG,
} WStype_t;

// The socket under the client, like the library's WEBSOCKETS_NETWORK_CLASS
// (WiFiClient on the ESP8266).
class HostNet {
 public:
  virtual ~HostNet() = default;
  // Blocking connect, as WiFiClient::connect: true when the TCP connection is up.
  virtual bool connect(const char* host, uint16_t port) = 0;
  virtual bool connected() = 0;
  // Non-blocking: bytes read, 0 when none are waiting (the peer closing
  // makes connected() false).
  virtual size_t read(uint8_t* out, size_t n) = 0;
  virtual size_t write(const uint8_t* data, size_t n) = 0;
  virtual void stop() = 0;
};

class WebSocketsClient {
 public:
  typedef std::function<void(WStype_t type, uint8_t* payload, size_t length)> WebSocketClientEvent;
  // Makes the socket of each connection attempt (the library does
  // `new WEBSOCKETS_NETWORK_CLASS()`); set by the test.
  static std::function<HostNet*()> net_factory;
  // The TLS socket of a beginSSL client's attempt (the library does
  // `new WEBSOCKETS_NETWORK_SSL_CLASS()`, then configures its checks); set
  // by the test or by a subclass. connect() makes TCP and the handshake.
  std::function<HostNet*()> ssl_factory;
  // Sockets created and not yet deleted, across all clients: a leak shows.
  static int live_sockets;

  WebSocketsClient();
  virtual ~WebSocketsClient();

  void begin(const char* host, uint16_t port, const char* url = "/", const char* protocol = "arduino");
  // WebSocketsClient::beginSSL (SSL_BARESSL): begin() with isSSL set. The
  // library would then check the certificate's SHA-1 fingerprint, or
  // nothing (setInsecure) without one: the adapter never relies on it.
  void beginSSL(const char* host, uint16_t port, const char* url = "/", const uint8_t* fingerprint = nullptr,
                const char* protocol = "arduino");
  void loop();
  void onEvent(WebSocketClientEvent cbEvent) { _cbEvent = cbEvent; }
  bool sendTXT(const char* payload, size_t length = 0);
  bool sendPing(uint8_t* payload = nullptr, size_t length = 0);
  void disconnect();
  void setReconnectInterval(unsigned long time) { _reconnectInterval = time; }
  void enableHeartbeat(uint32_t pingInterval, uint32_t pongTimeout, uint8_t disconnectTimeoutCount);
  void disableHeartbeat() { _client.pingInterval = 0; }
  bool isConnected() { return _client.status == WSC_CONNECTED; }

  // Test observers (not in the library).
  unsigned long lastConnectionFail() const { return _lastConnectionFail; }
  unsigned long reconnectInterval() const { return _reconnectInterval; }
  WSclientsStatus_t status() const { return _client.status; }
  int connect_attempts() const { return connect_attempts_; }

 protected:
  struct WSclient_t {
    HostNet* tcp = nullptr;
    bool isSSL = false;
    WSclientsStatus_t status = WSC_NOT_CONNECTED;
    std::string cUrl, cKey, cProtocol, cAccept;
    int cCode = 0;
    bool cIsUpgrade = false, cIsWebsocket = false;
    uint32_t pingInterval = 0, pongTimeout = 0, lastPing = 0;
    uint8_t disconnectTimeoutCount = 0, pongTimeoutCount = 0;
    bool pongReceived = false;
  };

  void clientDisconnect(WSclient_t* client, const char* reason = nullptr);
  void clientDisconnectCode(WSclient_t* client, uint16_t code);  // WebSockets::clientDisconnect(client, code)
  bool clientIsConnected(WSclient_t* client);
  void handleClientData();
  void connectedCb();
  void handleHeaderLine(std::string line);
  bool handleFrame();  // one complete frame from rx_ if there is one
  bool sendFrame(uint8_t opcode, const uint8_t* payload, size_t length);
  void handleHBPing();
  void handleHBTimeout();
  void runCbEvent(WStype_t type, uint8_t* payload, size_t length) {
    if (_cbEvent) _cbEvent(type, payload, length);
  }

  std::string _host;
  uint16_t _port = 0;
  WSclient_t _client;
  WebSocketClientEvent _cbEvent;
  unsigned long _lastConnectionFail = 0;
  unsigned long _reconnectInterval = 500;
  unsigned long _lastHeaderSent = 0;

  std::string rx_;  // bytes read, not yet parsed
  int connect_attempts_ = 0;
};

#endif  // ISOBOX_FW_TEST_WS_HOST_H
