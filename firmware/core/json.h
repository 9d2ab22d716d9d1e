// A minimal JSON scanner for Push & Pull messages: it validates a document
// and finds members in place. It never allocates and never copies except
// into caller-provided buffers; recursion is bounded by ISOBOX_FW_JSON_DEPTH.
#ifndef ISOBOX_FW_JSON_H
#define ISOBOX_FW_JSON_H

#include <stddef.h>

#include "config.h"
#include "flash.h"

namespace isobox {
namespace json {

// A slice of the input: one JSON value, including quotes for a string.
struct Span {
  const char* p = nullptr;
  size_t n = 0;
};

enum class Kind { Invalid, Object, Array, String, Number, True, False, Null };

// Reports whether s[0..n) is exactly one JSON value (whitespace around it
// allowed) nested at most ISOBOX_FW_JSON_DEPTH deep; on success *value
// (if given) is the value without the surrounding whitespace.
bool Parse(const char* s, size_t n, Span* value);

// The kind of a value returned by Parse or Get.
Kind KindOf(Span v);

// Finds member `key` of a validated object. With duplicate keys the last
// one wins, as in JavaScript's JSON.parse and PHP's json_decode, so the
// device reads what the portal and browsers read.
// The key is a flash string (ISOBOX_FSTR).
bool Get(Span object, flash::Str key, Span* out);

// Decodes a string value into out (NUL-terminated, UTF-8). False when v is
// not a string, does not fit in cap bytes (NUL included) or holds a lone
// surrogate or an escaped NUL.
bool CopyString(Span v, char* out, size_t cap);

// Reports whether string value v decodes to lit (a flash string of at
// most 63 bytes).
bool StringEquals(Span v, flash::Str lit);

}  // namespace json
}  // namespace isobox

#endif  // ISOBOX_FW_JSON_H
