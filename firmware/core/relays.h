// The board's relay outputs by name. A command sets a state, never toggles,
// so applying it twice (a replay after reconnect) changes nothing; the pin
// is written only when the state changes. The last state is kept across
// disconnects: a lost connection is not a reason to switch a load.
#ifndef ISOBOX_FW_RELAYS_H
#define ISOBOX_FW_RELAYS_H

#include <stdint.h>

#include "config.h"
#include "ports.h"

namespace isobox {

struct RelaySpec {
  char name[ISOBOX_FW_NAME_MAX + 1];  // "" = unnamed: takes every relay command
  uint8_t pin;
  bool activeLow;  // relay boards with an optocoupler switch on LOW
  bool onAtBoot;   // power-on state: on (a pump that must run unless told otherwise); else off
};

struct ApplyResult {
  uint8_t matched = 0;  // relays the command addressed
  uint8_t changed = 0;  // of those, relays whose state changed
};

class RelayBank {
 public:
  explicit RelayBank(Pins& pins) : pins_(pins) {}

  // Adds a relay, initially off (or on, onAtBoot); false when full, the
  // name is too long or already taken.
  bool Add(const char* name, uint8_t pin, bool activeLow, bool onAtBoot = false);
  // Drives every output to its current state (call once at boot).
  void Begin();
  // Applies a relay command. A relay matches when its name equals device,
  // or when it has no name (the blog post's single-relay behaviour: an
  // unnamed board obeys every `esp` command). No match: nothing happens.
  ApplyResult Apply(const char* device, bool on);

  uint8_t count() const { return count_; }
  bool state(uint8_t i) const { return i < count_ && state_[i]; }
  const RelaySpec& spec(uint8_t i) const { return specs_[i]; }

 private:
  void Drive(uint8_t i) { pins_.Write(specs_[i].pin, state_[i] != specs_[i].activeLow); }

  Pins& pins_;
  RelaySpec specs_[ISOBOX_FW_RELAYS_MAX] = {};
  bool state_[ISOBOX_FW_RELAYS_MAX] = {};
  uint8_t count_ = 0;
};

}  // namespace isobox

#endif  // ISOBOX_FW_RELAYS_H
