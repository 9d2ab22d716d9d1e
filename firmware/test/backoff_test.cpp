#include "../core/backoff.h"
#include "check.h"
#include "fakes.h"

TEST(backoff_follows_the_bitrix_schedule) {
  fake::Random r;  // 0: no jitter
  isobox::Backoff b(r);
  const uint32_t want[] = {100, 15000, 45000, 45000, 45000, 600000, 600000, 600000, 600000, 600000, 3600000, 3600000};
  for (uint32_t w : want) CHECK_EQ(b.NextDelayMs(), w < ISOBOX_FW_BACKOFF_CAP_MS ? w : ISOBOX_FW_BACKOFF_CAP_MS);
  CHECK_EQ(b.failures(), 12);
}

TEST(backoff_jitter_stretches_by_at_most_20_percent) {
  fake::Random r;
  r.values = {ISOBOX_FW_JITTER_PERMILLE, ISOBOX_FW_JITTER_PERMILLE + 1, 100, 0xFFFFFFFFu};
  isobox::Backoff b(r);
  CHECK_EQ(b.NextDelayMs(), 120);          // 100 ms + 20 %
  CHECK_EQ(b.NextDelayMs(), 15000);        // 201 % 201 = 0
  CHECK_EQ(b.NextDelayMs(), 45000 + 4500); // + 10 %
  uint32_t d = b.NextDelayMs();            // any value stays within [base, base * 1.2]
  CHECK(d >= 45000 && d <= 54000);
  for (int i = 0; i < 20; ++i) {
    d = b.NextDelayMs();
    CHECK(d <= ISOBOX_FW_BACKOFF_CAP_MS + ISOBOX_FW_BACKOFF_CAP_MS / 5);
  }
}

TEST(backoff_resets_only_after_a_stable_connection) {
  fake::Random r;
  isobox::Backoff b(r);
  b.NextDelayMs();
  b.NextDelayMs();
  b.NextDelayMs();
  b.Connected(1000);
  b.Disconnected(1000 + ISOBOX_FW_STABLE_MS - 1);  // flapping: keep climbing
  CHECK_EQ(b.NextDelayMs(), 45000);
  // Across the 32-bit millis() wrap.
  b.Connected(0xFFFFFF00u);
  b.Disconnected(0xFFFFFF00u + ISOBOX_FW_STABLE_MS);
  CHECK_EQ(b.failures(), 0);
  CHECK_EQ(b.NextDelayMs(), 100);
  // Disconnected without Connected is not a stable connection.
  b.Disconnected(0);
  CHECK_EQ(b.NextDelayMs(), 15000);
}
