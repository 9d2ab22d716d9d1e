// The core's ports on the ESP8266 Arduino core: millis(), the hardware
// RNG, digitalWrite, the emulated EEPROM sector, and a WebSocket client
// (Links2004/arduinoWebSockets, through the core's WsTransport). This is
// the only layer that knows them.
#pragma once

#include <Arduino.h>
#include <EEPROM.h>
#include <WebSocketsClient.h>
#include <isobox_core.h>
#include <ws_transport.h>

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

// The WebSocket adapter is the core's (core/ws_transport.h), templated on
// the library's client class: the connect/reconnect bookkeeping it must get
// right is tested on the host against a reproduction of the library's.
// wss:// needs the build's pinned TLS client (arduino/websockets_pinned_tls.h,
// forced in by `make esp8266`, ESP8266_TLS=1); a build without it refuses
// wss:// (core/ws_transport.h) and speaks ws:// only.
#if defined(ISOBOX_PINNED_TLS)
using Transport = isobox::WsTransport<isobox_board::PinnedWebSocketsClient>;
#else
using Transport = isobox::WsTransport<WebSocketsClient>;
#endif

}  // namespace board
