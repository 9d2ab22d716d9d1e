// TLS for the host reproduction of the WebSocket library, with exactly the
// check the board makes: BearSSL's known-key mode (setKnownKey) accepts a
// server that proves it holds the private key of the pinned public key and
// looks at nothing else — no chain, no CA, no names, no dates. Here OpenSSL
// does the handshake (TLS 1.2, the newest BearSSL speaks, and the ECDHE
// AEAD suites the board offers) and a verify callback compares the leaf
// certificate's SubjectPublicKeyInfo with the pin, ignoring every chain
// error; the handshake's own signature check proves the key is held.
// It also refuses a record larger than the board's receive buffer
// (setBufferSizes), which BearSSL would refuse too.
#ifndef ISOBOX_FW_TEST_TLS_NET_H
#define ISOBOX_FW_TEST_TLS_NET_H

#include <stddef.h>
#include <stdint.h>

#include <memory>
#include <string>
#include <vector>

#include "WebSocketsClient.h"

typedef struct ssl_st SSL;

// What the attempts of one client found out.
struct TlsOutcome {
  bool key_refused = false;  // the last handshake met another key
  bool pinned = false;       // the current connection passed the pin check
  size_t largest_record = 0; // largest TLS record received (ciphertext bytes)
  bool record_too_large = false;
};

class TlsNet : public HostNet {
 public:
  // rx: the board's receive buffer for plaintext (BearSSL adds 325 bytes
  // of record overhead, as WiFiClientSecure::setBufferSizes does).
  TlsNet(std::vector<uint8_t> pin, size_t rx, std::shared_ptr<TlsOutcome> outcome);
  ~TlsNet() override;
  bool connect(const char* host, uint16_t port) override;
  bool connected() override;
  size_t read(uint8_t* out, size_t n) override;
  size_t write(const uint8_t* data, size_t n) override;
  void stop() override;

  // Internal, for OpenSSL's callbacks.
  bool KeyMatches(const uint8_t* der, size_t n) const;
  void Record(size_t len);

 private:
  bool Fill();  // reads what is waiting into pending_; false once closed
  std::vector<uint8_t> pin_;
  size_t rx_;
  std::shared_ptr<TlsOutcome> outcome_;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool eof_ = false;
  std::string pending_;
};

// The WebSocket client with pinned wss:// for core/ws_transport.h: the
// host counterpart of arduino/isobox_relay/pinned_tls.h.
class PinnedHostClient : public WebSocketsClient {
 public:
  size_t rx_bytes = 16384;  // the board's BearSSL receive buffer (plaintext)

  void beginPinned(const char* host, uint16_t port, const char* url, const uint8_t* der, size_t n) {
    pin_.assign(der, der + n);
    outcome_ = std::make_shared<TlsOutcome>();
    std::vector<uint8_t> pin = pin_;
    size_t rx = rx_bytes;
    std::shared_ptr<TlsOutcome> o = outcome_;
    ssl_factory = [pin, rx, o]() -> HostNet* { return new TlsNet(pin, rx, o); };
    beginSSL(host, port, url, nullptr, "");
  }
  bool takeKeyRefused() {
    if (!outcome_ || !outcome_->key_refused) return false;
    outcome_->key_refused = false;
    return true;
  }
  bool pinnedConnection() const { return outcome_ && outcome_->pinned; }
  const TlsOutcome* outcome() const { return outcome_.get(); }

 private:
  std::vector<uint8_t> pin_;
  std::shared_ptr<TlsOutcome> outcome_;
};

#endif  // ISOBOX_FW_TEST_TLS_NET_H
