// See WebSocketsClient.h. Each function names the library function whose
// bookkeeping it reproduces; the comments say what is the library's and
// what is this harness's own.
#include "WebSocketsClient.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

std::function<HostNet*()> WebSocketsClient::net_factory;
int WebSocketsClient::live_sockets = 0;

namespace {

std::string Base64(const uint8_t* data, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(&out[0]), data, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

// RFC 6455 §4.2.2: base64(SHA-1(key + GUID)).
std::string AcceptKey(const std::string& key) {
  std::string s = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  uint8_t digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest);
  return Base64(digest, sizeof digest);
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\n')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

bool EqualFold(const std::string& a, const char* b) { return strcasecmp(a.c_str(), b) == 0; }

void DeleteNet(HostNet* n) {
  if (n == nullptr) return;
  delete n;
  --WebSocketsClient::live_sockets;
}

}  // namespace

WebSocketsClient::WebSocketsClient() = default;

WebSocketsClient::~WebSocketsClient() { disconnect(); }

// WebSocketsClient::begin: records the target and resets the client; the
// socket pointer is overwritten, not freed (the library's behaviour).
void WebSocketsClient::begin(const char* host, uint16_t port, const char* url, const char* protocol) {
  _host = host;
  _port = port;
  _client.status = WSC_NOT_CONNECTED;
  _client.tcp = nullptr;
  _client.isSSL = false;
  _client.cUrl = url;
  _client.cCode = 0;
  _client.cIsUpgrade = false;
  _client.cIsWebsocket = true;
  _client.cKey = "";
  _client.cAccept = "";
  _client.cProtocol = protocol;
  _client.lastPing = 0;
  _client.pongReceived = false;
  _client.pongTimeoutCount = 0;
  _lastConnectionFail = 0;
  _lastHeaderSent = 0;
  rx_.clear();
}

// WebSocketsClient::beginSSL: begin(), then isSSL.
void WebSocketsClient::beginSSL(const char* host, uint16_t port, const char* url, const uint8_t*, const char* protocol) {
  begin(host, port, url, protocol);
  _client.isSSL = true;
}

// WebSocketsClient::loop (non-async network types).
void WebSocketsClient::loop() {
  if (_port == 0) return;
  if (!clientIsConnected(&_client)) {
    // do not flood the server
    if ((millis() - _lastConnectionFail) < _reconnectInterval) return;
    if (_client.tcp) {
      DeleteNet(_client.tcp);
      _client.tcp = nullptr;
    }
    if (_client.isSSL) {
      _client.tcp = ssl_factory ? ssl_factory() : nullptr;
    } else {
      _client.tcp = net_factory ? net_factory() : nullptr;
    }
    if (!_client.tcp) return;
    ++live_sockets;
    ++connect_attempts_;
    if (_client.tcp->connect(_host.c_str(), _port)) {
      connectedCb();
      _lastConnectionFail = 0;
    } else {
      // connectFailedCb() only logs: no event.
      _lastConnectionFail = millis();
    }
  } else {
    handleClientData();
    if (_client.status == WSC_CONNECTED) {
      handleHBPing();
      handleHBTimeout();
    }
  }
}

// WebSocketsClient::disconnect.
void WebSocketsClient::disconnect() {
  if (clientIsConnected(&_client)) clientDisconnectCode(&_client, 1000);
}

// WebSockets::clientDisconnect(client, code): a close frame if connected.
void WebSocketsClient::clientDisconnectCode(WSclient_t* client, uint16_t code) {
  if (client->status == WSC_CONNECTED && code) {
    uint8_t b[2] = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code & 0xFF)};
    sendFrame(0x8, b, 2);
  }
  clientDisconnect(client);
}

// WebSocketsClient::clientDisconnect.
void WebSocketsClient::clientDisconnect(WSclient_t* client, const char* reason) {
  bool event = false;
  if (client->tcp) {
    if (client->tcp->connected()) client->tcp->stop();
    event = true;
    DeleteNet(client->tcp);
    client->tcp = nullptr;
  }
  client->cCode = 0;
  client->cKey = "";
  client->cAccept = "";
  client->cIsUpgrade = false;
  client->cIsWebsocket = false;
  client->status = WSC_NOT_CONNECTED;
  _lastConnectionFail = millis();
  rx_.clear();
  if (event) {
    if (reason && strlen(reason) > 0) {
      runCbEvent(WStype_DISCONNECTED, reinterpret_cast<uint8_t*>(const_cast<char*>(reason)), strlen(reason));
    } else {
      runCbEvent(WStype_DISCONNECTED, nullptr, 0);
    }
  }
}

// WebSocketsClient::clientIsConnected.
bool WebSocketsClient::clientIsConnected(WSclient_t* client) {
  if (!client->tcp) return false;
  if (client->tcp->connected()) {
    if (client->status != WSC_NOT_CONNECTED) return true;
  } else if (client->status != WSC_NOT_CONNECTED) {
    clientDisconnect(client, "Connection lost");
  }
  if (client->tcp) clientDisconnect(client, "TCP connection cleanup");
  return false;
}

// WebSocketsClient::connectedCb + sendHeader.
void WebSocketsClient::connectedCb() {
  _client.status = WSC_HEADER;
  uint8_t key[16];
  for (uint8_t& b : key) b = static_cast<uint8_t>(rand() & 0xFF);
  _client.cKey = Base64(key, sizeof key);
  std::string h = "GET " + _client.cUrl + " HTTP/1.1\r\nHost: " + _host + ":" + std::to_string(_port) +
                  "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Key: " + _client.cKey + "\r\n";
  if (!_client.cProtocol.empty()) h += "Sec-WebSocket-Protocol: " + _client.cProtocol + "\r\n";
  h += "Origin: file://\r\nUser-Agent: arduino-WebSocket-Client\r\n\r\n";
  _client.tcp->write(reinterpret_cast<const uint8_t*>(h.data()), h.size());
  _lastHeaderSent = millis();
}

// WebSocketsClient::handleClientData: the header timeout, then whatever is
// waiting. The library reads one header line or one frame per call with
// blocking reads; this harness reads what is there and handles every
// complete line or frame in it.
void WebSocketsClient::handleClientData() {
  if ((_client.status == WSC_HEADER || _client.status == WSC_BODY) &&
      _lastHeaderSent + WEBSOCKETS_TCP_TIMEOUT < millis()) {
    clientDisconnect(&_client, "Header response timeout");
    return;
  }
  uint8_t buf[4096];
  for (;;) {
    if (!_client.tcp) return;
    size_t n = _client.tcp->read(buf, sizeof buf);
    if (n == 0) break;
    rx_.append(reinterpret_cast<char*>(buf), n);
  }
  while (_client.tcp && !rx_.empty()) {
    if (_client.status == WSC_HEADER) {
      size_t nl = rx_.find('\n');
      if (nl == std::string::npos) return;
      std::string line = rx_.substr(0, nl);
      rx_.erase(0, nl + 1);
      handleHeaderLine(line);
    } else if (_client.status == WSC_CONNECTED) {
      if (!handleFrame()) return;
    } else {
      clientDisconnectCode(&_client, 1002);
      return;
    }
  }
}

// WebSocketsClient::handleHeader.
void WebSocketsClient::handleHeaderLine(std::string line) {
  line = Trim(line);
  if (!line.empty()) {
    if (line.compare(0, 7, "HTTP/1.") == 0) {
      _client.cCode = atoi(line.c_str() + 9);
    } else if (line.find(':') != std::string::npos) {
      std::string name = line.substr(0, line.find(':'));
      std::string value = Trim(line.substr(line.find(':') + 1));
      if (EqualFold(name, "Connection")) {
        if (EqualFold(value, "upgrade")) _client.cIsUpgrade = true;
      } else if (EqualFold(name, "Upgrade")) {
        if (EqualFold(value, "websocket")) _client.cIsWebsocket = true;
      } else if (EqualFold(name, "Sec-WebSocket-Accept")) {
        _client.cAccept = value;
      } else if (EqualFold(name, "Sec-WebSocket-Protocol")) {
        _client.cProtocol = value;
      }
    }
    return;
  }
  bool ok = _client.cIsUpgrade && _client.cIsWebsocket;
  if (ok && _client.cCode != 101) {
    std::string reason = "HTTP " + std::to_string(_client.cCode);
    clientDisconnect(&_client, reason.c_str());
    _lastConnectionFail = millis();
    return;
  }
  if (ok) ok = !_client.cAccept.empty() && _client.cAccept == AcceptKey(_client.cKey);
  if (ok) {
    _client.status = WSC_CONNECTED;  // headerDone
    runCbEvent(WStype_CONNECTED, reinterpret_cast<uint8_t*>(&_client.cUrl[0]), _client.cUrl.size());
    return;
  }
  _lastConnectionFail = millis();
  std::string reason = "WebSocket handshake failed";
  if (_client.cCode > 0) reason += " - HTTP " + std::to_string(_client.cCode);
  clientDisconnect(&_client, reason.c_str());
}

// WebSockets::handleWebsocketCb + handleWebsocketPayloadCb +
// WebSocketsClient::messageReceived, on a complete frame in rx_.
bool WebSocketsClient::handleFrame() {
  const uint8_t* b = reinterpret_cast<const uint8_t*>(rx_.data());
  size_t have = rx_.size();
  if (have < 2) return false;
  bool fin = (b[0] & 0x80) != 0;
  uint8_t op = b[0] & 0x0F;
  bool mask = (b[1] & 0x80) != 0;
  uint64_t len = b[1] & 0x7F;
  size_t hl = 2;
  if (len == 126) {
    if (have < 4) return false;
    len = static_cast<uint64_t>(b[2]) << 8 | b[3];
    hl = 4;
  } else if (len == 127) {
    if (have < 10) return false;
    len = 0;
    for (int i = 0; i < 8; ++i) len = len << 8 | b[2 + i];
    hl = 10;
  }
  if (len > WEBSOCKETS_MAX_DATA_SIZE) {
    clientDisconnectCode(&_client, 1009);
    return false;
  }
  size_t mk = hl;
  if (mask) hl += 4;
  if (have < hl + len) return false;
  std::string payload = rx_.substr(hl, static_cast<size_t>(len));
  if (mask) {
    for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(payload[i] ^ b[mk + i % 4]);
  }
  rx_.erase(0, hl + static_cast<size_t>(len));
  uint8_t* p = reinterpret_cast<uint8_t*>(&payload[0]);
  size_t n = payload.size();
  switch (op) {
    case 0x1:
      runCbEvent(fin ? WStype_TEXT : WStype_FRAGMENT_TEXT_START, p, n);
      break;
    case 0x2:
      runCbEvent(fin ? WStype_BIN : WStype_FRAGMENT_BIN_START, p, n);
      break;
    case 0x0:
      runCbEvent(fin ? WStype_FRAGMENT_FIN : WStype_FRAGMENT, p, n);
      break;
    case 0x9:
      sendFrame(0xA, p, n);
      runCbEvent(WStype_PING, p, n);
      break;
    case 0xA:
      _client.pongReceived = true;
      runCbEvent(WStype_PONG, p, n);
      break;
    case 0x8:
      clientDisconnectCode(&_client, 1000);
      return false;
    default:
      clientDisconnectCode(&_client, 1002);
      return false;
  }
  return true;
}

// WebSockets::sendFrame: client frames are masked.
bool WebSocketsClient::sendFrame(uint8_t opcode, const uint8_t* payload, size_t length) {
  if (!_client.tcp || !_client.tcp->connected()) return false;
  std::string f;
  f.push_back(static_cast<char>(0x80 | opcode));
  if (length < 126) {
    f.push_back(static_cast<char>(0x80 | length));
  } else if (length < 65536) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(length >> 8));
    f.push_back(static_cast<char>(length & 0xFF));
  } else {
    f.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((static_cast<uint64_t>(length) >> (8 * i)) & 0xFF));
  }
  uint8_t key[4];
  for (uint8_t& k : key) k = static_cast<uint8_t>(rand() & 0xFF);
  f.append(reinterpret_cast<char*>(key), 4);
  for (size_t i = 0; i < length; ++i) f.push_back(static_cast<char>(payload[i] ^ key[i % 4]));
  return _client.tcp->write(reinterpret_cast<const uint8_t*>(f.data()), f.size()) == f.size();
}

bool WebSocketsClient::sendTXT(const char* payload, size_t length) {
  if (length == 0) length = strlen(payload);
  if (!clientIsConnected(&_client)) return false;
  return sendFrame(0x1, reinterpret_cast<const uint8_t*>(payload), length);
}

bool WebSocketsClient::sendPing(uint8_t* payload, size_t length) {
  if (!clientIsConnected(&_client)) return false;
  return sendFrame(0x9, payload, length);
}

// WebSockets::enableHeartbeat.
void WebSocketsClient::enableHeartbeat(uint32_t pingInterval, uint32_t pongTimeout, uint8_t disconnectTimeoutCount) {
  _client.pingInterval = pingInterval;
  _client.pongTimeout = pongTimeout;
  _client.disconnectTimeoutCount = disconnectTimeoutCount;
  _client.pongReceived = false;
}

// WebSocketsClient::handleHBPing.
void WebSocketsClient::handleHBPing() {
  if (_client.pingInterval == 0) return;
  uint32_t pi = static_cast<uint32_t>(millis()) - _client.lastPing;
  if (pi > _client.pingInterval) {
    if (sendPing()) {
      _client.lastPing = static_cast<uint32_t>(millis());
      _client.pongReceived = false;
    } else {
      clientDisconnectCode(&_client, 1000);
    }
  }
}

// WebSockets::handleHBTimeout.
void WebSocketsClient::handleHBTimeout() {
  if (!_client.pingInterval) return;
  uint32_t pi = static_cast<uint32_t>(millis()) - _client.lastPing;
  if (_client.pongReceived) {
    _client.pongTimeoutCount = 0;
  } else if (pi > _client.pongTimeout) {
    _client.pongTimeoutCount++;
    _client.lastPing = static_cast<uint32_t>(millis()) - _client.pingInterval - 500;
    if (_client.disconnectTimeoutCount && _client.pongTimeoutCount >= _client.disconnectTimeoutCount) {
      clientDisconnect(&_client);
    }
  }
}
