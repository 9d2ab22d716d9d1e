#include "relays.h"

#include <string.h>

namespace isobox {

bool RelayBank::Add(const char* name, uint8_t pin, bool activeLow, bool onAtBoot) {
  if (count_ >= ISOBOX_FW_RELAYS_MAX || name == nullptr) return false;
  if (strlen(name) > ISOBOX_FW_NAME_MAX) return false;
  for (uint8_t i = 0; i < count_; ++i)
    if (!strcmp(specs_[i].name, name) || specs_[i].pin == pin) return false;
  RelaySpec& s = specs_[count_];
  strcpy(s.name, name);
  s.pin = pin;
  s.activeLow = activeLow;
  s.onAtBoot = onAtBoot;
  state_[count_] = onAtBoot;
  ++count_;
  return true;
}

void RelayBank::Begin() {
  for (uint8_t i = 0; i < count_; ++i) Drive(i);
}

ApplyResult RelayBank::Apply(const char* device, bool on) {
  ApplyResult r;
  if (device == nullptr) device = "";
  for (uint8_t i = 0; i < count_; ++i) {
    if (specs_[i].name[0] != '\0' && strcmp(specs_[i].name, device) != 0) continue;
    ++r.matched;
    if (state_[i] == on) continue;
    state_[i] = on;
    Drive(i);
    ++r.changed;
  }
  return r;
}

}  // namespace isobox
