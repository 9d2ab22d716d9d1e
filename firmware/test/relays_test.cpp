#include "../core/relays.h"
#include "check.h"
#include "fakes.h"

TEST(relays_apply_is_idempotent) {
  fake::Pins pins;
  isobox::RelayBank bank(pins);
  CHECK(bank.Add("pump", 12, false));
  CHECK(bank.Add("fan", 13, true));
  bank.Begin();
  CHECK_EQ(pins.writes.size(), 2);
  CHECK(pins.writes.size() == 2 && !pins.writes[0].high && pins.writes[1].high);  // active-low off = HIGH
  pins.writes.clear();
  isobox::ApplyResult r = bank.Apply("pump", true);
  CHECK_EQ(r.matched, 1);
  CHECK_EQ(r.changed, 1);
  r = bank.Apply("pump", true);  // the same command replayed
  CHECK_EQ(r.matched, 1);
  CHECK_EQ(r.changed, 0);
  CHECK_EQ(pins.writes.size(), 1);
  CHECK(pins.writes[0].pin == 12 && pins.writes[0].high);
  CHECK(bank.state(0));
  CHECK(!bank.state(1));
  bank.Apply("fan", true);
  CHECK(pins.writes.size() == 2 && pins.writes[1].pin == 13 && !pins.writes[1].high);  // active-low on = LOW
}

TEST(relays_unknown_device_is_ignored) {
  fake::Pins pins;
  isobox::RelayBank bank(pins);
  CHECK(bank.Add("pump", 12, false));
  isobox::ApplyResult r = bank.Apply("heater", true);
  CHECK_EQ(r.matched, 0);
  r = bank.Apply("", true);  // a named relay does not take unnamed commands
  CHECK_EQ(r.matched, 0);
  r = bank.Apply(nullptr, true);
  CHECK_EQ(r.matched, 0);
  CHECK(pins.writes.empty());
  CHECK(!bank.state(0));
  CHECK(!bank.state(7));
}

TEST(relays_unnamed_relay_takes_every_command) {
  fake::Pins pins;
  isobox::RelayBank bank(pins);
  CHECK(bank.Add("", 12, false));
  CHECK_EQ(bank.Apply("", true).changed, 1);
  CHECK_EQ(bank.Apply("anything", false).changed, 1);
  CHECK_EQ(bank.Apply(nullptr, true).changed, 1);
}

TEST(relays_add_limits) {
  fake::Pins pins;
  isobox::RelayBank bank(pins);
  CHECK(!bank.Add(nullptr, 1, false));
  char longName[ISOBOX_FW_NAME_MAX + 2];
  memset(longName, 'n', sizeof longName - 1);
  longName[sizeof longName - 1] = '\0';
  CHECK(!bank.Add(longName, 1, false));
  longName[ISOBOX_FW_NAME_MAX] = '\0';
  CHECK(bank.Add(longName, 1, false));
  CHECK(!bank.Add(longName, 2, false));  // duplicate name
  CHECK(!bank.Add("other", 1, false));   // duplicate pin
  for (uint8_t i = bank.count(); i < ISOBOX_FW_RELAYS_MAX; ++i) {
    char name[4] = {'r', static_cast<char>('0' + i), 0, 0};
    CHECK(bank.Add(name, static_cast<uint8_t>(10 + i), false));
  }
  CHECK(!bank.Add("last", 99, false));
  CHECK_EQ(bank.count(), ISOBOX_FW_RELAYS_MAX);
}

TEST(relays_power_on_state) {
  fake::Pins p;
  isobox::RelayBank b(p);
  CHECK(b.Add("pump", 12, false, true));
  CHECK(b.Add("fan", 13, true, true));
  CHECK(b.Add("light", 14, false));
  b.Begin();
  CHECK(b.state(0) && b.state(1) && !b.state(2));
  CHECK_EQ(p.writes.size(), 3);
  CHECK(p.writes[0].pin == 12 && p.writes[0].high);
  CHECK(p.writes[1].pin == 13 && !p.writes[1].high);  // active low: on = LOW
  CHECK(p.writes[2].pin == 14 && !p.writes[2].high);
}
