#include "json.h"

#include <string.h>

namespace isobox {
namespace json {
namespace {

struct Scanner {
  const char* p;
  const char* end;

  void SkipSpace() {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
  }

  bool Literal(flash::Str word) {
    size_t n = word.size();
    if (static_cast<size_t>(end - p) < n) return false;
    for (size_t i = 0; i < n; ++i)
      if (p[i] != word[i]) return false;
    p += n;
    return true;
  }

  // The one-character escapes after a backslash (u is handled apart).
  static bool IsEscape(char c) {
    switch (c) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': return true;
      default: return false;
    }
  }

  static bool IsHex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }

  bool String() {
    if (p >= end || *p != '"') return false;
    ++p;
    while (p < end) {
      unsigned char c = static_cast<unsigned char>(*p++);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') continue;
      if (p >= end) return false;
      char e = *p++;
      if (e == 'u') {
        if (end - p < 4) return false;
        for (int i = 0; i < 4; ++i)
          if (!IsHex(p[i])) return false;
        p += 4;
      } else if (!IsEscape(e)) {
        return false;
      }
    }
    return false;
  }

  bool Digits() {
    const char* start = p;
    while (p < end && *p >= '0' && *p <= '9') ++p;
    return p > start;
  }

  bool Number() {
    if (p < end && *p == '-') ++p;
    if (p < end && *p == '0') {
      ++p;
    } else if (!Digits()) {
      return false;
    }
    if (p < end && *p == '.') {
      ++p;
      if (!Digits()) return false;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
      ++p;
      if (p < end && (*p == '+' || *p == '-')) ++p;
      if (!Digits()) return false;
    }
    return true;
  }

  bool Value(int depth) {
    SkipSpace();
    if (p >= end) return false;
    switch (*p) {
      case '{': return Container(depth, '}');
      case '[': return Container(depth, ']');
      case '"': return String();
      case 't': return Literal(ISOBOX_FSTR("true"));
      case 'f': return Literal(ISOBOX_FSTR("false"));
      case 'n': return Literal(ISOBOX_FSTR("null"));
      default: return Number();
    }
  }

  bool Container(int depth, char close) {
    if (depth >= ISOBOX_FW_JSON_DEPTH) return false;
    ++p;
    SkipSpace();
    if (p < end && *p == close) {
      ++p;
      return true;
    }
    for (;;) {
      if (close == '}') {
        SkipSpace();
        if (!String()) return false;
        SkipSpace();
        if (p >= end || *p != ':') return false;
        ++p;
      }
      if (!Value(depth + 1)) return false;
      SkipSpace();
      if (p >= end) return false;
      if (*p == close) {
        ++p;
        return true;
      }
      if (*p != ',') return false;
      ++p;
    }
  }
};

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

unsigned Hex4(const char* p) {
  return static_cast<unsigned>(HexVal(p[0]) << 12 | HexVal(p[1]) << 8 | HexVal(p[2]) << 4 |
                               HexVal(p[3]));
}

}  // namespace

bool Parse(const char* s, size_t n, Span* value) {
  if (s == nullptr) return false;
  Scanner sc{s, s + n};
  sc.SkipSpace();
  const char* start = sc.p;
  if (!sc.Value(0)) return false;
  const char* stop = sc.p;
  sc.SkipSpace();
  if (sc.p != sc.end) return false;
  if (value != nullptr) {
    value->p = start;
    value->n = static_cast<size_t>(stop - start);
  }
  return true;
}

Kind KindOf(Span v) {
  if (v.p == nullptr || v.n == 0) return Kind::Invalid;
  switch (v.p[0]) {
    case '{': return Kind::Object;
    case '[': return Kind::Array;
    case '"': return Kind::String;
    case 't': return Kind::True;
    case 'f': return Kind::False;
    case 'n': return Kind::Null;
    default: return Kind::Number;
  }
}

bool Get(Span object, flash::Str key, Span* out) {
  if (KindOf(object) != Kind::Object) return false;
  Scanner sc{object.p + 1, object.p + object.n};
  bool found = false;
  for (;;) {
    sc.SkipSpace();
    if (sc.p >= sc.end || *sc.p == '}') return found;
    Span k{sc.p, 0};
    if (!sc.String()) return false;
    k.n = static_cast<size_t>(sc.p - k.p);
    sc.SkipSpace();
    if (sc.p >= sc.end || *sc.p != ':') return false;
    ++sc.p;
    sc.SkipSpace();
    const char* vstart = sc.p;
    // The object was validated as a whole, so this depth is only a guard.
    if (!sc.Value(0)) return false;
    if (StringEquals(k, key)) {
      out->p = vstart;
      out->n = static_cast<size_t>(sc.p - vstart);
      found = true;
    }
    sc.SkipSpace();
    if (sc.p < sc.end && *sc.p == ',') ++sc.p;
  }
}

bool CopyString(Span v, char* out, size_t cap) {
  if (KindOf(v) != Kind::String || v.n < 2 || cap == 0) return false;
  const char* p = v.p + 1;
  const char* end = v.p + v.n - 1;
  size_t o = 0;
  auto put = [&](unsigned c) {
    if (o + 1 >= cap) return false;
    out[o++] = static_cast<char>(static_cast<unsigned char>(c & 0xFF));
    return true;
  };
  while (p < end) {
    char c = *p++;
    if (c != '\\') {
      if (!put(static_cast<unsigned char>(c))) return false;
      continue;
    }
    if (p >= end) return false;
    char e = *p++;
    unsigned cp;
    switch (e) {
      case 'b': cp = '\b'; break;
      case 'f': cp = '\f'; break;
      case 'n': cp = '\n'; break;
      case 'r': cp = '\r'; break;
      case 't': cp = '\t'; break;
      case 'u':
        if (end - p < 4) return false;
        cp = Hex4(p);
        p += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return false;
          unsigned lo = Hex4(p + 2);
          if (lo < 0xDC00 || lo > 0xDFFF) return false;
          p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        break;
      default: cp = static_cast<unsigned char>(e); break;
    }
    if (cp == 0) return false;  // an embedded NUL would cut C strings short
    bool ok;
    if (cp < 0x80) {
      ok = put(static_cast<unsigned char>(cp));
    } else if (cp < 0x800) {
      ok = put(0xC0 | (cp >> 6)) && put(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      ok = put(0xE0 | (cp >> 12)) && put(0x80 | ((cp >> 6) & 0x3F)) && put(0x80 | (cp & 0x3F));
    } else {
      ok = put(0xF0 | (cp >> 18)) && put(0x80 | ((cp >> 12) & 0x3F)) &&
           put(0x80 | ((cp >> 6) & 0x3F)) && put(0x80 | (cp & 0x3F));
    }
    if (!ok) return false;
  }
  out[o] = '\0';
  return true;
}

bool StringEquals(Span v, flash::Str lit) {
  char buf[64];
  if (!CopyString(v, buf, sizeof buf)) return false;
  return flash::Equals(buf, lit);
}

}  // namespace json
}  // namespace isobox
