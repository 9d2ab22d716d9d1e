// Linked into the sketch when it runs under the ESP8266 core's host
// emulation (tests/host of esp8266/Arduino; `make -C firmware emulate`).
// It supplies what the emulator lacks for this sketch and measures the
// heap; it changes nothing the sketch or the libraries do:
//
//   - ESP.rtcUserMemoryRead/Write and ESP.getResetInfoPtr, which the
//     emulator's MockEsp.cpp does not define: 512 bytes of RTC user memory
//     that start zeroed, and a power-on reset — every start of the
//     emulator is a cold boot of the board.
//   - No LittleFS: the core's tests/host Makefile links its LittleFS and
//     SD mocks, whose sources are git submodules of the core (absent from a
//     `git archive` of it); the sketch uses no filesystem, so the build
//     leaves them out and these stand-ins refuse -L (run with -L 0 -S 0).
//   - The setup button (GPIO13 to GND, INPUT_PULLUP) released: the
//     emulator's digitalRead returns what was last written to a pin and 0
//     otherwise, so without this the button would read as held.
//   - Heap accounting: malloc/calloc/realloc/free (and so operator
//     new/delete) of the whole process are counted by their usable size.
//     Blocks of 64 KiB and more are counted apart: they are the
//     emulator's socket objects (ClientContext with its 64 KiB receive
//     buffer, CCBUFSIZE; on the chip lwIP keeps the data in pbufs), and no
//     allocation of the sketch could be that large on an 80 KiB chip.
//     SIGUSR1 prints "emu-heap current=N peak=N blocks=N mock=N" to
//     stderr; SIGUSR2 restarts the peak from the current value. These are
//     bytes the sketch, its libraries, BearSSL and the emulator's other
//     mocks hold on a 32-bit x86 host, not the chip's free heap: umm_malloc
//     on the chip adds its own block overhead, BearSSL's 6,200 B stack
//     thunk is not allocated here (it runs on the host stack), and the
//     SDK's Wi-Fi/lwIP buffers do not exist.
#include <Arduino.h>
#include <malloc.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <user_interface.h>

#include <atomic>

#ifndef ISOBOX_SETUP_BUTTON_PIN
#define ISOBOX_SETUP_BUTTON_PIN 13
#endif

namespace {

uint32_t rtc_user[128];  // 512 bytes, addressed in 4-byte blocks as on the chip
rst_info reset_info{};   // REASON_DEFAULT_RST: power on

constexpr size_t kMockBlock = 64 * 1024;
std::atomic<long> heap_current{0};
std::atomic<long> heap_peak{0};
std::atomic<long> heap_blocks{0};
std::atomic<long> heap_mock{0};

void Count(void* p, bool add) {
  if (p == nullptr) return;
  long n = static_cast<long>(malloc_usable_size(p));
  if (static_cast<size_t>(n) >= kMockBlock) {
    heap_mock += add ? n : -n;
    return;
  }
  if (!add) {
    heap_current -= n;
    --heap_blocks;
    return;
  }
  long now = heap_current += n;
  ++heap_blocks;
  long peak = heap_peak.load();
  while (now > peak && !heap_peak.compare_exchange_weak(peak, now)) {
  }
}

// Async-signal-safe decimal.
char* Put(char* o, const char* s) {
  while (*s) *o++ = *s++;
  return o;
}
char* PutNum(char* o, long v) {
  char tmp[24];
  int i = 0;
  bool neg = v < 0;
  unsigned long u = neg ? 0ul - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
  do {
    tmp[i++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (neg) *o++ = '-';
  while (i > 0) *o++ = tmp[--i];
  return o;
}

void OnReport(int) {
  char line[160];
  char* o = Put(line, "emu-heap current=");
  o = PutNum(o, heap_current.load());
  o = Put(o, " peak=");
  o = PutNum(o, heap_peak.load());
  o = Put(o, " blocks=");
  o = PutNum(o, heap_blocks.load());
  o = Put(o, " mock=");
  o = PutNum(o, heap_mock.load());
  o = Put(o, "\n");
  ssize_t r = write(STDERR_FILENO, line, static_cast<size_t>(o - line));
  (void)r;
}

void OnResetPeak(int) { heap_peak.store(heap_current.load()); }

__attribute__((constructor)) void EmuBoardInit() {
  digitalWrite(ISOBOX_SETUP_BUTTON_PIN, HIGH);  // released; the pull-up holds it high
  reset_info.reason = REASON_DEFAULT_RST;
  signal(SIGUSR1, OnReport);
  signal(SIGUSR2, OnResetPeak);
}

}  // namespace

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void __libc_free(void*);

void* malloc(size_t n) {
  void* p = __libc_malloc(n);
  Count(p, true);
  return p;
}
void* calloc(size_t n, size_t m) {
  void* p = __libc_calloc(n, m);
  Count(p, true);
  return p;
}
void* realloc(void* old, size_t n) {
  Count(old, false);
  void* p = __libc_realloc(old, n);
  Count(p != nullptr ? p : (n != 0 ? old : nullptr), true);
  return p;
}
void free(void* p) {
  Count(p, false);
  __libc_free(p);
}
}

bool EspClass::rtcUserMemoryRead(uint32_t offset, uint32_t* data, size_t size) {
  if (offset * 4 + size > sizeof rtc_user || (size % 4) != 0) return false;
  memcpy(data, reinterpret_cast<const uint8_t*>(rtc_user) + offset * 4, size);
  return true;
}

bool EspClass::rtcUserMemoryWrite(uint32_t offset, uint32_t* data, size_t size) {
  if (offset * 4 + size > sizeof rtc_user || (size % 4) != 0) return false;
  memcpy(reinterpret_cast<uint8_t*>(rtc_user) + offset * 4, data, size);
  return true;
}

rst_info* EspClass::getResetInfoPtr() { return &reset_info; }

void mock_start_littlefs(const String&, size_t, size_t, size_t) {
  fprintf(stderr, "this emulation of the relay has no LittleFS: run it with -L 0\n");
  exit(2);
}
void mock_stop_littlefs() {}
