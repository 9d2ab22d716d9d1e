// Compile-only stand-ins for the parts of the ESP8266 Arduino core the
// sketch uses, so `make shim` can type-check arduino/ on a PC (style.md §6:
// host builds with a fake Arduino.h). Declarations only: nothing here runs,
// and it proves the sketch is valid C++ against these signatures, not that
// they match the real core in every detail.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <functional>

#define HIGH 1
#define LOW 0
#define INPUT_PULLUP 2
#define OUTPUT 1
// cores/esp8266 pgmspace.h / WString.h: PSTR is a char pointer into flash,
// F() a distinct pointer type, so a flash string cannot be passed where a
// RAM string is taken (as with the real core). Flash is read through the
// _P functions and pgm_read_*.
#define PROGMEM
#define PGM_P const char*
#define PSTR(s) (s)
class __FlashStringHelper;
#define FPSTR(p) (reinterpret_cast<const __FlashStringHelper*>(p))
#define F(s) FPSTR(PSTR(s))
uint8_t pgm_read_byte(const void*);
char* strcpy_P(char*, PGM_P);
char* strncpy_P(char*, PGM_P, size_t);
int snprintf_P(char*, size_t, PGM_P, ...) __attribute__((format(printf, 3, 4)));
extern volatile uint32_t RANDOM_REG32;

unsigned long millis();
void delay(unsigned long);
void pinMode(uint8_t, uint8_t);
void digitalWrite(uint8_t, uint8_t);
int digitalRead(uint8_t);

class String {
 public:
  String(const char* s = "");
  String(const __FlashStringHelper*);
  String& operator+=(const char*);
  String& operator+=(const __FlashStringHelper*);
  String& operator+=(char);
  String& operator+=(int);
  String& operator+=(unsigned);
  bool operator==(const char*) const;
  bool operator!=(const char*) const;
  void trim();
  unsigned length() const;
  const char* c_str() const;
  long toInt() const;
  bool reserve(unsigned);
};

class IPAddress {
 public:
  bool operator==(const IPAddress&) const;
  String toString() const;
};

struct HardwareSerial {
  void begin(unsigned long);
  int printf(const char*, ...) __attribute__((format(printf, 2, 3)));
  size_t printf_P(const char*, ...) __attribute__((format(printf, 2, 3)));
};
extern HardwareSerial Serial;

// cores/esp8266/Esp.h and the SDK's user_interface.h.
enum rst_reason { REASON_DEFAULT_RST = 0, REASON_WDT_RST, REASON_EXCEPTION_RST, REASON_SOFT_WDT_RST,
                  REASON_SOFT_RESTART, REASON_DEEP_SLEEP_AWAKE, REASON_EXT_SYS_RST };
struct rst_info {
  uint32_t reason;
};
struct EspClass {
  uint32_t getChipId();
  void restart();
  uint32_t getFreeHeap();
  String getResetReason();
  rst_info* getResetInfoPtr();
  bool rtcUserMemoryRead(uint32_t offset, uint32_t* data, size_t size);
  bool rtcUserMemoryWrite(uint32_t offset, uint32_t* data, size_t size);
};
extern EspClass ESP;
