#pragma once
#include <Arduino.h>
struct EEPROMClass {
  void begin(size_t);
  uint8_t read(int);
  void write(int, uint8_t);
  bool commit();
};
extern EEPROMClass EEPROM;
