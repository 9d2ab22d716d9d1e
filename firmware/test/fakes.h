// Test doubles for the core's ports: a clock the test moves, scripted
// randomness, recorded pin writes and socket calls, RAM "flash".
#ifndef ISOBOX_FW_TEST_FAKES_H
#define ISOBOX_FW_TEST_FAKES_H

#include <string.h>

#include <string>
#include <vector>

#include "../core/ports.h"

namespace fake {

struct Clock : isobox::Clock {
  uint32_t now = 0;
  uint32_t NowMs() override { return now; }
};

// Returns the scripted values in turn, then repeats the last.
struct Random : isobox::Random {
  std::vector<uint32_t> values{0};
  size_t i = 0;
  uint32_t Next() override { return values[i < values.size() ? i++ : values.size() - 1]; }
};

struct Pins : isobox::Pins {
  struct W {
    uint8_t pin;
    bool high;
  };
  std::vector<W> writes;
  void Write(uint8_t pin, bool high) override { writes.push_back({pin, high}); }
};

struct Transport : isobox::Transport {
  std::vector<std::string> opened;
  int closes = 0;
  bool fail = false;
  bool Open(const char* url) override {
    opened.push_back(url);
    return !fail;
  }
  void Close() override { ++closes; }
};

struct Storage : isobox::Storage {
  std::vector<uint8_t> mem = std::vector<uint8_t>(4096, 0xFF);  // erased flash reads 0xFF
  int writes = 0;
  bool fail = false;
  size_t Size() override { return mem.size(); }
  void Read(size_t off, uint8_t* out, size_t n) override { memcpy(out, mem.data() + off, n); }
  bool Write(size_t off, const uint8_t* data, size_t n) override {
    if (fail) return false;
    ++writes;
    memcpy(mem.data() + off, data, n);
    return true;
  }
};

}  // namespace fake

#endif  // ISOBOX_FW_TEST_FAKES_H
