// The core's Transport over the WebSocket client API of
// Links2004/arduinoWebSockets (class WebSocketsClient). Header-only and
// templated on the client class, so that the very same adapter runs on the
// board (the real library) and in the host tests (test/ws_host: the
// library's connection bookkeeping reproduced, over a scripted socket or a
// real one). Include it after nothing in particular: it includes
// <WebSocketsClient.h> itself and is not part of isobox_core.h, so the
// host unit tests of the rest of the core do not need a WebSocket library.
//
// What the library does, and what this adapter therefore must do (read
// from WebSocketsClient.cpp, release 2.7.x):
//  - begin() only records host/port/path and sets _lastConnectionFail = 0;
//    the TCP connect happens in a later loop() once
//    millis() - _lastConnectionFail >= _reconnectInterval. With the
//    interval at its maximum, that is never: the interval must be small
//    when the core asks for an attempt.
//  - A failed TCP connect fires no event; it leaves the dead socket object
//    in place and sets _lastConnectionFail = millis(). The next loop()
//    frees it and fires WStype_DISCONNECTED ("TCP connection cleanup") and
//    then, once the interval has passed, connects again by itself. So the
//    interval goes to its maximum right after the attempt: the library
//    never retries on its own, and the core's back-off decides.
//  - A refused handshake (non-101 status, wrong Sec-WebSocket-Accept), the
//    5 s header timeout, a lost connection, a missed heartbeat and a close
//    frame all go through clientDisconnect: WStype_DISCONNECTED, and
//    _lastConnectionFail = millis().
//  - begin() sets its socket pointer to NULL without freeing it, so a
//    socket left by a failed attempt would leak on every retry: Open calls
//    disconnect() first, which frees it.
//  - disconnect() (and the DISCONNECTED event it fires) may not run inside
//    the library's own callback, which still uses the socket afterwards:
//    Close only marks the socket for release after loop() returns.
//
// wss:// (eventrelay's TLS listener): the library's own TLS path checks a
// certificate's SHA-1 fingerprint or nothing at all (setInsecure), and
// cannot pin a key. So wss:// needs a client class with
//   beginPinned(host, port, path, der, len)  begin a TLS attempt whose
//       socket accepts only the server key der (DER SubjectPublicKeyInfo):
//       BearSSL's known-key mode on the board
//       (arduino/isobox_relay/pinned_tls.h), OpenSSL with the same check
//       on the host (test/ws_host/tls_net.h);
//   takeKeyRefused()    true once after an attempt refused for the key;
//   pinnedConnection()  the open connection was made by the pinned socket
//       (false means the library was built without it: refused).
// With a client class without beginPinned (the board's ws://-only build)
// or without a pin (SetPin), Open refuses every wss:// URL: never TLS that
// checks nothing.
#ifndef ISOBOX_FW_WS_TRANSPORT_H
#define ISOBOX_FW_WS_TRANSPORT_H

#include <WebSocketsClient.h>
#include <stddef.h>
#include <stdint.h>

#include <type_traits>
#include <utility>

#include "link.h"
#include "ports.h"
#include "url.h"

namespace isobox {

// Client-side heartbeat: a ping every interval, a pong expected within
// timeout, the connection dropped after misses missed pongs. Finds a
// half-open TCP connection (a rebooted switch) in about 35 s.
struct Heartbeat {
  uint32_t interval_ms = 15000;
  uint32_t timeout_ms = 3000;
  uint8_t misses = 2;
};

// Whether WsClient can make pinned TLS connections (see above).
template <class C, class = void>
struct CanPin : std::false_type {};
template <class C>
struct CanPin<C, std::void_t<decltype(std::declval<C&>().beginPinned(
                     "", uint16_t{0}, "", static_cast<const uint8_t*>(nullptr), size_t{0}))>> : std::true_type {};

template <class WsClient>
class WsTransport : public Transport {
 public:
  // The interval after which the library would reconnect by itself: the
  // largest unsigned long, i.e. not within 49 days of the last failure.
  static constexpr unsigned long kNever = ~0ul;

  enum class Phase : uint8_t {
    kIdle,     // nothing open; loop() is not called
    kArmed,    // begin() done; the next loop() makes the one TCP attempt
    kActive,   // attempt made; events are the link's
  };

  WsTransport() = default;
  WsTransport(const WsTransport&) = delete;
  WsTransport& operator=(const WsTransport&) = delete;
  // The client's destructor disconnects and fires an event: not the link's.
  ~WsTransport() {
    phase_ = Phase::kIdle;
    link_ = nullptr;
  }

  void Attach(Link* link, const Heartbeat& hb = Heartbeat()) {
    link_ = link;
    ws_.onEvent([this](WStype_t type, uint8_t* payload, size_t length) { OnEvent(type, payload, length); });
    ws_.enableHeartbeat(hb.interval_ms, hb.timeout_ms, hb.misses);
    ws_.setReconnectInterval(kNever);
  }

  // The key wss:// connections must meet (DER SubjectPublicKeyInfo, checked
  // by core/pin.h CheckSpki); it must outlive the transport (the settings).
  void SetPin(const uint8_t* der, size_t n) {
    pin_ = n > 0 ? der : nullptr;
    pin_len_ = pin_ != nullptr ? n : 0;
  }
  static constexpr bool kCanPin = CanPin<WsClient>::value;

  bool Open(const char* url) override {
    WsTarget t;
    if (!SplitWsUrl(url, &t)) return false;
    if (t.secure && (!kCanPin || pin_ == nullptr)) return false;  // no unverified TLS, ever
    phase_ = Phase::kIdle;  // events of the old socket are not the link's
    Release();              // frees what a failed attempt left (begin() would leak it)
    ws_.setReconnectInterval(0);
    secure_ = t.secure;
    if (secure_) {
      BeginPinned(t);
    } else {
      ws_.begin(t.host, t.port, t.path, "");  // no subprotocol: eventrelay expects none
    }
    phase_ = Phase::kArmed;
    ++opens_;
    return true;
  }

  void Close() override {
    if (phase_ == Phase::kIdle) return;
    phase_ = Phase::kIdle;
    release_ = true;
  }

  // Call from loop(), before Link::Tick.
  void Loop() {
    if (phase_ != Phase::kIdle) {
      bool armed = phase_ == Phase::kArmed;
      ws_.loop();
      if (armed) {
        // The attempt is made (or the library could not even allocate a
        // socket, which the link's connect timeout covers): from now on
        // the library never reconnects by itself.
        ws_.setReconnectInterval(kNever);
        if (phase_ == Phase::kArmed) phase_ = Phase::kActive;
      }
    }
    if (release_) Release();
  }

  Phase phase() const { return phase_; }
  uint32_t opens() const { return opens_; }
  // wss:// connections refused because the library's TLS client was not
  // the pinned one (a build without it).
  uint32_t unpinned() const { return unpinned_; }
  WsClient& client() { return ws_; }

 private:
  void Release() {
    release_ = false;
    ws_.disconnect();
  }

  void BeginPinned(const WsTarget& t) {
    if constexpr (kCanPin) ws_.beginPinned(t.host, t.port, t.path, pin_, pin_len_);
  }
  bool TakeKeyRefused() {
    if constexpr (kCanPin) return ws_.takeKeyRefused();
    return false;
  }
  bool PinnedConnection() {
    if constexpr (kCanPin) return ws_.pinnedConnection();
    return false;
  }

  void OnEvent(WStype_t type, uint8_t* payload, size_t length) {
    if (link_ == nullptr || phase_ == Phase::kIdle) return;
    const char* data = reinterpret_cast<const char*>(payload);
    switch (type) {
      case WStype_CONNECTED:
        if (secure_ && !PinnedConnection()) {
          // TLS that did not check the pin (the library made its own
          // client): drop it before a byte is read, as a failed attempt.
          ++unpinned_;
          phase_ = Phase::kIdle;
          release_ = true;
          link_->OnClose();
          break;
        }
        link_->OnOpen();
        break;
      case WStype_DISCONNECTED:
        phase_ = Phase::kIdle;
        if (secure_ && TakeKeyRefused()) link_->OnKeyRefused();
        link_->OnClose();
        break;
      case WStype_TEXT:  // a whole frame
        link_->OnData(data, length);
        link_->OnFrameEnd();
        break;
      case WStype_FRAGMENT_TEXT_START:
      case WStype_FRAGMENT:
        link_->OnData(data, length);
        break;
      case WStype_FRAGMENT_FIN:
        link_->OnData(data, length);
        link_->OnFrameEnd();
        break;
      case WStype_PING:  // eventrelay's keepalive
      case WStype_PONG:  // the answer to our heartbeat
        link_->OnAlive();
        break;
      default:  // binary (protobuf mode is never requested), errors
        break;
    }
  }

  WsClient ws_;
  Link* link_ = nullptr;
  Phase phase_ = Phase::kIdle;
  bool release_ = false;
  bool secure_ = false;
  const uint8_t* pin_ = nullptr;
  size_t pin_len_ = 0;
  uint32_t opens_ = 0;
  uint32_t unpinned_ = 0;
};

}  // namespace isobox

#endif  // ISOBOX_FW_WS_TRANSPORT_H
