// The core's ports on the ESP8266 Arduino core: millis(), the hardware
// RNG, digitalWrite, the emulated EEPROM sector, and a WebSocket client
// (Links2004/arduinoWebSockets). This is the only layer that knows them.
#pragma once

#include <Arduino.h>
#include <EEPROM.h>
#include <WebSocketsClient.h>
#include <isobox_core.h>

namespace board {

class Clock : public isobox::Clock {
 public:
  uint32_t NowMs() override { return millis(); }
};

// RANDOM_REG32 is the ESP8266's hardware random number generator.
class Random : public isobox::Random {
 public:
  uint32_t Next() override { return RANDOM_REG32; }
};

class Pins : public isobox::Pins {
 public:
  void Write(uint8_t pin, bool high) override {
    pinMode(pin, OUTPUT);
    digitalWrite(pin, high ? HIGH : LOW);
  }
};

// One flash sector emulated as EEPROM. EEPROM.commit() erases and rewrites
// the whole sector, so it is called only from Write, which the core calls
// only when the settings really changed (isobox::SaveIfChanged).
class Storage : public isobox::Storage {
 public:
  static constexpr size_t kSize = 1024;
  void Begin() { EEPROM.begin(kSize); }
  size_t Size() override { return kSize; }
  void Read(size_t off, uint8_t* out, size_t n) override {
    for (size_t i = 0; i < n; ++i) out[i] = EEPROM.read(static_cast<int>(off + i));
  }
  bool Write(size_t off, const uint8_t* data, size_t n) override {
    for (size_t i = 0; i < n; ++i) EEPROM.write(static_cast<int>(off + i), data[i]);
    return EEPROM.commit();
  }
};
static_assert(isobox::kSettingsImageSize <= Storage::kSize, "settings do not fit the EEPROM sector");

// Adapts WebSocketsClient to the core: the core decides when to connect
// (its back-off), so the library's own reconnect must never run. The
// library reconnects from loop() whenever it is not connected, hence loop()
// is called only between Open and Close.
class Transport : public isobox::Transport {
 public:
  void Attach(isobox::Link* link) {
    link_ = link;
    ws_.onEvent([this](WStype_t type, uint8_t* payload, size_t length) { OnEvent(type, payload, length); });
    // Client-side pings find a half-open TCP connection (a rebooted router)
    // long before TCP would: 15 s interval, 3 s for the pong, 2 misses.
    ws_.enableHeartbeat(15000, 3000, 2);
  }

  bool Open(const char* url) override {
    // url = ws://host:port/path?query (built and checked by the core).
    const char* hostStart = url + 5;  // "ws://"
    const char* colon = strchr(hostStart, ':');
    const char* path = colon ? strchr(colon, '/') : nullptr;
    if (strncmp(url, "ws://", 5) != 0 || colon == nullptr || path == nullptr) return false;
    size_t hostLen = static_cast<size_t>(colon - hostStart);
    if (hostLen >= sizeof host_) return false;
    memcpy(host_, hostStart, hostLen);
    host_[hostLen] = '\0';
    uint16_t port = static_cast<uint16_t>(atoi(colon + 1));
    FlushDisconnect();
    ws_.setReconnectInterval(0xFFFFFFFFul);  // belt and braces: the core reconnects
    ws_.begin(host_, port, path, "");         // no subprotocol: eventrelay expects none
    active_ = true;
    return true;
  }

  // The core may call Close from inside a message callback, i.e. inside
  // ws_.loop(); the library must not free its buffers under itself, so the
  // disconnect is deferred until loop() has returned.
  void Close() override {
    if (!active_) return;
    // Cleared first: the DISCONNECTED event disconnect() fires is for a
    // socket the core already gave up, and must not reach it.
    active_ = false;
    pending_disconnect_ = true;
  }

  void Loop() {
    if (active_) ws_.loop();
    FlushDisconnect();
  }

 private:
  void FlushDisconnect() {
    if (!pending_disconnect_) return;
    pending_disconnect_ = false;
    ws_.disconnect();
  }

  void OnEvent(WStype_t type, uint8_t* payload, size_t length) {
    if (link_ == nullptr || !active_) return;
    const char* data = reinterpret_cast<const char*>(payload);
    switch (type) {
      case WStype_CONNECTED:
        link_->OnOpen();
        break;
      case WStype_DISCONNECTED:
        active_ = false;
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
      default:  // binary (protobuf mode is never requested), ping/pong, errors
        break;
    }
  }

  WebSocketsClient ws_;
  isobox::Link* link_ = nullptr;
  bool active_ = false;
  bool pending_disconnect_ = false;
  char host_[ISOBOX_FW_HOST_MAX + 1] = {};
};

}  // namespace board
