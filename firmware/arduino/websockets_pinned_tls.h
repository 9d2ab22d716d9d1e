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

// Receive buffer (plaintext bytes). eventrelay writes a subscriber that
// asked for frameBytes=N (this build asks for 2,048) TLS records of at
// most N + 10 plaintext bytes, so 4 KiB hold them with room to spare. Go's
// TLS never grants a smaller maximum fragment length (MFLN), so a server
// other than isobox's may write records of up to 16 KiB: a record too
// large for the buffer (BR_ERR_TOO_LARGE, seen in the handshake or on an
// open connection) makes every later connection use the fallback size
// until the board restarts, counted on the status page. Transmit: the
// board sends small frames only.
#ifndef ISOBOX_TLS_RX_BYTES
#define ISOBOX_TLS_RX_BYTES 4096
#endif
#ifndef ISOBOX_TLS_RX_FALLBACK_BYTES
#define ISOBOX_TLS_RX_FALLBACK_BYTES 16384
#endif
#ifndef ISOBOX_TLS_TX_BYTES
#define ISOBOX_TLS_TX_BYTES 512
#endif

// What the one TLS connection of the board shares with its client object,
// which the library constructs without arguments.
struct PinnedTlsState {
  const BearSSL::PublicKey* key = nullptr;
  int rx = ISOBOX_TLS_RX_BYTES;
  int tx = ISOBOX_TLS_TX_BYTES;
  bool refused = false;   // the last handshake failed on the key
  bool pinned = false;    // the last connect() was ours and succeeded
  int last_error = 0;     // BearSSL error of the last failed handshake
  bool fallback = false;  // a record did not fit ISOBOX_TLS_RX_BYTES: the fallback size until restart
  uint32_t too_large = 0; // such records (connections they ended)
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
  // The library asks connected() before it stops and deletes the client:
  // the last chance to read why BearSSL closed an open connection (stop()
  // frees its engine, and with it the error).
  uint8_t connected() override {
    uint8_t c = BearSSL::WiFiClientSecure::connected();
    if (!c) NoteClose();
    return c;
  }
  void stop() override {
    NoteClose();
    BearSSL::WiFiClientSecure::stop();
  }

 private:
  void NoteClose() {
    if (!open_) return;
    open_ = false;
    char text[80];
    int e = getLastSSLError(text, sizeof text);
    if (e != 0) Serial.printf_P(PSTR("tls: connection closed, BearSSL error %d: %s\n"), e, text);
    if (e == BR_ERR_TOO_LARGE) TooLarge(TlsState());
  }
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
      s.pinned = open_ = true;
      return ok;
    }
    char text[80];
    s.last_error = getLastSSLError(text, sizeof text);
    Serial.printf_P(PSTR("tls: handshake failed, BearSSL error %d: %s\n"), s.last_error, text);
    // Known-key: the server's handshake signature does not verify with the
    // pinned key (another key of the same type), or its key type does not
    // fit the pinned one.
    s.refused = s.last_error == BR_ERR_BAD_SIGNATURE || s.last_error == BR_ERR_WRONG_KEY_USAGE;
    if (s.last_error == BR_ERR_TOO_LARGE) TooLarge(s);
    return ok;
  }
  static void TooLarge(PinnedTlsState& s) {
    ++s.too_large;
    if (s.fallback || s.rx >= ISOBOX_TLS_RX_FALLBACK_BYTES) return;
    s.fallback = true;
    Serial.printf_P(PSTR("tls: a record did not fit the %d B receive buffer; %d B from the next connection until restart\n"),
                  s.rx, ISOBOX_TLS_RX_FALLBACK_BYTES);
  }
  bool open_ = false;  // a handshake of this client succeeded and it was not closed since
};

// The pinned key as BearSSL needs it. bearssl-esp8266 at 5166f2bb (the
// core's tools/sdk/ssl/bearssl) decodes an EC SubjectPublicKeyInfo
// wrongly: its br_pkey_decoder (src/x509/pkey_decoder.t0, decode-EC) takes
// the point's first byte, 0x04 (uncompressed), for an OCTET STRING tag and
// keeps the 64 bytes after it, so PublicKey(der) gives an EC key without
// its 0x04 and every ECDSA check with it fails (BR_ERR_BAD_SIGNATURE,
// with the right key too; found by running the sketch under the core's host
// emulation, `make -C firmware emulate-test`). So when the decoded point
// lacks its 0x04, the key is decoded again from the same SPKI with the
// BIT STRING holding one more 0x04, which that decoder reads as the tag,
// keeping 04|X|Y; the result is used only if it is exactly the key's
// point. A decoder that gets it right is used as is.
inline BearSSL::PublicKey* ParsePinnedKey(const uint8_t* der, size_t n) {
  BearSSL::PublicKey* k = new BearSSL::PublicKey(der, n);
  const br_ec_public_key* ec = k->isEC() ? k->getEC() : nullptr;
  if (ec == nullptr || (ec->qlen > 0 && ec->q[0] == 0x04)) return k;
  // SEQUENCE { SEQUENCE algorithm, BIT STRING { 00, 04 X Y } }, short lengths (P-256, P-384).
  if (n < 8 || n > 200 || der[0] != 0x30 || der[1] != n - 2 || der[2] != 0x30) return k;
  size_t p = 4 + der[3];  // the BIT STRING
  if (p + 4 > n || der[p] != 0x03 || der[p + 1] != n - p - 2 || der[p + 2] != 0 || der[p + 3] != 0x04) return k;
  size_t qlen = n - p - 3;
  std::unique_ptr<uint8_t[]> fixed(new uint8_t[n + 1]);
  memcpy(fixed.get(), der, p + 4);
  fixed[p + 4] = 0x04;
  memcpy(fixed.get() + p + 5, der + p + 4, n - p - 4);
  fixed[1] = static_cast<uint8_t>(fixed[1] + 1);
  fixed[p + 1] = static_cast<uint8_t>(fixed[p + 1] + 1);
  BearSSL::PublicKey* again = new BearSSL::PublicKey(fixed.get(), n + 1);
  const br_ec_public_key* ec2 = again->isEC() ? again->getEC() : nullptr;
  if (ec2 == nullptr || ec2->curve != ec->curve || ec2->qlen != qlen || memcmp(ec2->q, der + p + 3, qlen) != 0) {
    delete again;
    return k;
  }
  delete k;
  return again;
}

// The WebSocket client core/ws_transport.h pins with (beginPinned & co.).
class PinnedWebSocketsClient : public WebSocketsClient {
 public:
  void beginPinned(const char* host, uint16_t port, const char* url, const uint8_t* der, size_t n) {
    PinnedTlsState& s = TlsState();
    if (der != der_ || n != len_) {
      key_.reset(ParsePinnedKey(der, n));
      der_ = der;
      len_ = n;
    }
    s.key = key_.get();
    s.rx = s.fallback ? ISOBOX_TLS_RX_FALLBACK_BYTES : ISOBOX_TLS_RX_BYTES;
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

 private:
  std::unique_ptr<BearSSL::PublicKey> key_;
  const uint8_t* der_ = nullptr;
  size_t len_ = 0;
};

}  // namespace isobox_board

#undef WEBSOCKETS_NETWORK_SSL_CLASS
#define WEBSOCKETS_NETWORK_SSL_CLASS isobox_board::PinnedTlsClient
