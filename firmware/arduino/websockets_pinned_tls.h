// Forced (-include) into every translation unit that sees the WebSockets
// library by `make esp8266` with ESP8266_TLS=1 (the default): wss:// with
// eventrelay's public key pinned (BearSSL's known-key mode).
//
// The library cannot pin a key: for wss:// its WebSocketsClient::loop()
// makes `new WEBSOCKETS_NETWORK_SSL_CLASS()` (BearSSL::WiFiClientSecure on
// the ESP8266), calls setFingerprint (a certificate's SHA-1, which changes
// with every renewal) or setInsecure() (checks nothing), then connect().
// So this header takes the library's header in first (include-guarded),
// then points WEBSOCKETS_NETWORK_SSL_CLASS at PinnedTlsClient, a
// WiFiClientSecure whose connect() — virtual, called through the library's
// WiFiClient pointer — first replaces whatever the library set with
// setKnownKey(the pin) and the receive/transmit buffer sizes. Without a
// pin it refuses to connect. The library's struct keeps its
// WiFiClientSecure* member (declared before the macro changes), so every
// TU agrees on the layout; only the `new` in WebSocketsClient.cpp changes.
// core/ws_transport.h additionally drops any TLS connection that this
// client did not make (a library compiled without this header).
#pragma once
#include <WebSockets.h>
#include <WebSocketsClient.h>
#include <WiFiClientSecureBearSSL.h>

#include <memory>

#define ISOBOX_PINNED_TLS 1

namespace isobox_board {

// Receive buffer (plaintext bytes) when eventrelay does not negotiate a
// smaller maximum fragment length (MFLN; Go's TLS never does): a TLS record
// may then carry 16 KiB. Transmit: the board sends small frames only.
#ifndef ISOBOX_TLS_RX_BYTES
#define ISOBOX_TLS_RX_BYTES 16384
#endif
#ifndef ISOBOX_TLS_TX_BYTES
#define ISOBOX_TLS_TX_BYTES 512
#endif
// Asked for with the MFLN probe; used as the receive buffer if granted.
#ifndef ISOBOX_TLS_MFLN_BYTES
#define ISOBOX_TLS_MFLN_BYTES 4096
#endif

// What the one TLS connection of the board shares with its client object,
// which the library constructs without arguments.
struct PinnedTlsState {
  const BearSSL::PublicKey* key = nullptr;
  int rx = ISOBOX_TLS_RX_BYTES;
  int tx = ISOBOX_TLS_TX_BYTES;
  bool refused = false;  // the last handshake failed on the key
  bool pinned = false;   // the last connect() was ours and succeeded
  int last_error = 0;    // BearSSL error of the last failed handshake
};

inline PinnedTlsState& TlsState() {
  static PinnedTlsState s;
  return s;
}

class PinnedTlsClient : public BearSSL::WiFiClientSecure {
 public:
  int connect(const char* name, uint16_t port) override {
    if (!Arm()) return 0;
    return Done(BearSSL::WiFiClientSecure::connect(name, port));
  }
  int connect(const String& host, uint16_t port) override { return connect(host.c_str(), port); }
  int connect(IPAddress ip, uint16_t port) override {
    if (!Arm()) return 0;
    return Done(BearSSL::WiFiClientSecure::connect(ip, port));
  }

 private:
  bool Arm() {
    PinnedTlsState& s = TlsState();
    s.pinned = s.refused = false;
    if (s.key == nullptr || !(s.key->isEC() || s.key->isRSA())) return false;  // never the library's setInsecure()
    setKnownKey(s.key);  // also clears what the library set
    setBufferSizes(s.rx, s.tx);
    return true;
  }
  int Done(int ok) {
    PinnedTlsState& s = TlsState();
    if (ok) {
      s.pinned = true;
      return ok;
    }
    s.last_error = getLastSSLError();
    // Known-key: the server's handshake signature does not verify with the
    // pinned key (another key of the same type), or its key type does not
    // fit the pinned one.
    s.refused = s.last_error == BR_ERR_BAD_SIGNATURE || s.last_error == BR_ERR_WRONG_KEY_USAGE;
    return ok;
  }
};

// The WebSocket client core/ws_transport.h pins with (beginPinned & co.).
class PinnedWebSocketsClient : public WebSocketsClient {
 public:
  void beginPinned(const char* host, uint16_t port, const char* url, const uint8_t* der, size_t n) {
    PinnedTlsState& s = TlsState();
    if (der != der_ || n != len_) {
      key_.reset(new BearSSL::PublicKey(der, n));
      der_ = der;
      len_ = n;
    }
    s.key = key_.get();
    if (!probed_) {
      // Once per boot: a server that grants a smaller maximum fragment
      // length lets the board use a smaller receive buffer.
      probed_ = true;
      mfln_ = BearSSL::WiFiClientSecure::probeMaxFragmentLength(host, port, ISOBOX_TLS_MFLN_BYTES);
    }
    s.rx = mfln_ ? ISOBOX_TLS_MFLN_BYTES : ISOBOX_TLS_RX_BYTES;
    s.tx = ISOBOX_TLS_TX_BYTES;
    s.pinned = false;
    beginSSL(host, port, url, static_cast<const uint8_t*>(nullptr), "");
  }
  bool takeKeyRefused() {
    PinnedTlsState& s = TlsState();
    bool r = s.refused;
    s.refused = false;
    return r;
  }
  bool pinnedConnection() const { return TlsState().pinned; }
  bool mfln() const { return mfln_; }

 private:
  std::unique_ptr<BearSSL::PublicKey> key_;
  const uint8_t* der_ = nullptr;
  size_t len_ = 0;
  bool probed_ = false;
  bool mfln_ = false;
};

}  // namespace isobox_board

#undef WEBSOCKETS_NETWORK_SSL_CLASS
#define WEBSOCKETS_NETWORK_SSL_CLASS isobox_board::PinnedTlsClient
