// The small interfaces through which the core reaches the board: time,
// randomness, relay outputs, the WebSocket and flash. The Arduino shim
// implements them; the host tests fake them.
#ifndef ISOBOX_FW_PORTS_H
#define ISOBOX_FW_PORTS_H

#include <stddef.h>
#include <stdint.h>

namespace isobox {

// Milliseconds since boot, wrapping at 2^32 like Arduino's millis(); the
// core only ever subtracts two readings.
class Clock {
 public:
  virtual uint32_t NowMs() = 0;

 protected:
  ~Clock() = default;
};

// Uniformly distributed 32-bit values (the ESP8266 hardware RNG).
class Random {
 public:
  virtual uint32_t Next() = 0;

 protected:
  ~Random() = default;
};

// Drives one output pin to a logic level.
class Pins {
 public:
  virtual void Write(uint8_t pin, bool high) = 0;

 protected:
  ~Pins() = default;
};

// A WebSocket client. Open starts connecting (false: failed at once); the
// shim reports the outcome through Link::OnOpen / OnClose. Close is the
// core's own decision and takes effect at once: the shim must not report
// OnClose for it (Link ignores a late one anyway).
class Transport {
 public:
  virtual bool Open(const char* url) = 0;
  virtual void Close() = 0;

 protected:
  ~Transport() = default;
};

// Byte-addressed persistent storage (the emulated EEPROM sector).
class Storage {
 public:
  virtual size_t Size() = 0;
  virtual void Read(size_t offset, uint8_t* out, size_t n) = 0;
  // Writes and commits n bytes; false on a flash error.
  virtual bool Write(size_t offset, const uint8_t* data, size_t n) = 0;

 protected:
  ~Storage() = default;
};

}  // namespace isobox

#endif  // ISOBOX_FW_PORTS_H
