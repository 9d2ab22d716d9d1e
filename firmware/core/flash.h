// Constant strings and tables kept in flash on the ESP8266, so that they do
// not take DRAM: on the chip everything in .rodata is copied to RAM at
// boot, and the device build's DRAM is nearly full.
//
// Flash on the ESP8266 may only be read with aligned 32-bit loads: a plain
// byte load from it is an exception. So flash data is never touched
// directly, only through the accessors here (ReadByte, ReadWord, and what
// is built on them), which use pgm_read_byte / pgm_read_dword on the chip.
// To keep everyone honest on the host, where any load would work, the
// host build stores flash data XOR a mask and the accessors undo it: code
// that reads a flash string or table directly gets garbage and a host test
// fails. The types help too: a flash string is a flash::Str, not a char
// pointer, so it cannot be handed to strcmp or printf.
//
//   static constexpr flash::Table<uint32_t, 2> kT ISOBOX_FLASH = {1u, 2u};
//   kT[1]                                       // 2
//   flash::Equals(ramText, ISOBOX_FSTR("pull"))  // a string literal in flash
#ifndef ISOBOX_FW_FLASH_H
#define ISOBOX_FW_FLASH_H

#include <stddef.h>
#include <stdint.h>

// On the chip: the compiler's own macro, the same in every translation
// unit. Not ESP8266: the ESP8266 core's host emulation (make emulate)
// defines that in the files that include Arduino.h only, and inline
// accessors built two ways in one program read scrambled bytes as plain.
#if defined(__XTENSA__)
#define ISOBOX_FW_FLASH_PGM 1
#include <pgmspace.h>
#define ISOBOX_FLASH PROGMEM
#else
#define ISOBOX_FW_FLASH_PGM 0
#define ISOBOX_FLASH
#endif

namespace isobox {
namespace flash {

#if ISOBOX_FW_FLASH_PGM
constexpr uint8_t kMask = 0;  // stored as is
#else
constexpr uint8_t kMask = 0xA5;  // stored scrambled: see the top of this file
#endif

constexpr char Enc(char c) { return static_cast<char>(static_cast<uint8_t>(c) ^ kMask); }
constexpr uint8_t Enc(uint8_t v) { return static_cast<uint8_t>(v ^ kMask); }
constexpr uint32_t Enc(uint32_t v) { return v ^ (0x01010101u * kMask); }

// The accessors: every read of flash data goes through one of these two.
inline uint8_t ReadByte(const void* p) {
#if ISOBOX_FW_FLASH_PGM
  return pgm_read_byte(p);
#else
  return Enc(*static_cast<const uint8_t*>(p));
#endif
}
inline uint32_t ReadWord(const uint32_t* p) {
#if ISOBOX_FW_FLASH_PGM
  return pgm_read_dword(p);
#else
  return Enc(*p);
#endif
}
inline uint8_t Read(const uint8_t* p) { return ReadByte(p); }
inline char Read(const char* p) { return static_cast<char>(ReadByte(p)); }
inline uint32_t Read(const uint32_t* p) { return ReadWord(p); }

// A NUL-terminated string in flash.
class Str {
 public:
  constexpr explicit Str(const char* p) : p_(p) {}
  char operator[](size_t i) const { return Read(p_ + i); }
  size_t size() const {
    size_t n = 0;
    while ((*this)[n] != '\0') ++n;
    return n;
  }

 private:
  const char* p_;
};

// The storage of a string literal in flash (ISOBOX_FSTR, or a named
// constant: static constexpr flash::Literal<sizeof "ab"> k ISOBOX_FLASH{"ab"}).
template <size_t N>
struct Literal {
  char enc[N];
  constexpr Literal(const char (&s)[N]) : enc{} {
    for (size_t i = 0; i < N; ++i) enc[i] = Enc(s[i]);
  }
  constexpr Str str() const { return Str(enc); }
  static constexpr size_t size() { return N - 1; }
};

// A table of bytes or 32-bit words in flash; t[i] reads element i.
template <typename T, size_t N>
struct Table {
  T enc[N];
  template <typename... A>
  constexpr Table(A... a) : enc{Enc(static_cast<T>(a))...} {
    static_assert(sizeof...(A) == N, "a flash table is given all its elements");
  }
  T operator[](size_t i) const { return Read(&enc[i]); }
  static constexpr size_t size() { return N; }
};

// Entry k of a list of strings stored as one literal, "a\0b\0c"; the
// last entry for k past the end. (A switch returning one literal per case
// would make the compiler keep a table of pointers in RAM.)
template <size_t N>
Str Nth(const Literal<N>& list, size_t k) {
  size_t at = 0;
  for (size_t i = 0; k > 0 && i + 1 < N - 1; ++i) {
    if (Read(&list.enc[i]) == '\0') {
      at = i + 1;
      --k;
    }
  }
  return Str(list.enc + at);
}

// ram (NUL-terminated) equals s.
inline bool Equals(const char* ram, Str s) {
  for (size_t i = 0;; ++i) {
    char c = s[i];
    if (ram[i] != c) return false;
    if (c == '\0') return true;
  }
}

// ram starts with s; *len (if given) = s's length.
inline bool StartsWith(const char* ram, Str s, size_t* len = nullptr) {
  size_t i = 0;
  for (char c; (c = s[i]) != '\0'; ++i) {
    if (ram[i] != c) return false;
  }
  if (len != nullptr) *len = i;
  return true;
}

// memcmp(ram, t, n) for a table of bytes (n <= N).
template <size_t N>
int Compare(const uint8_t* ram, const Table<uint8_t, N>& t, size_t n) {
  for (size_t i = 0; i < n && i < N; ++i) {
    uint8_t b = t[i];
    if (ram[i] != b) return ram[i] < b ? -1 : 1;
  }
  return 0;
}

// Copies s into out (cap bytes, NUL-terminated, cut if it does not fit);
// returns out.
inline const char* Copy(Str s, char* out, size_t cap) {
  if (out == nullptr || cap == 0) return out;
  size_t i = 0;
  for (char c; i + 1 < cap && (c = s[i]) != '\0'; ++i) out[i] = c;
  out[i] = '\0';
  return out;
}

}  // namespace flash
}  // namespace isobox

// A string literal in flash, as a flash::Str (like PSTR, typed).
#define ISOBOX_FSTR(s)                                                               \
  (__extension__({                                                                   \
    static constexpr ::isobox::flash::Literal<sizeof(s)> isobox_fstr_ ISOBOX_FLASH{s}; \
    isobox_fstr_.str();                                                              \
  }))

#endif  // ISOBOX_FW_FLASH_H
