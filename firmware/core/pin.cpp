#include "pin.h"

#include <stdio.h>
#include <string.h>

#include "flash.h"

namespace isobox {
namespace {

// --- DER -------------------------------------------------------------

struct Der {
  const uint8_t* p;
  size_t n;
};

// Reads one TLV of the given tag from the front of d: definite, minimally
// encoded lengths of at most two bytes (nothing here is longer), inside d.
bool Read(Der* d, uint8_t tag, Der* out) {
  if (d->n < 2 || d->p[0] != tag) return false;
  size_t len, hdr;
  uint8_t b = d->p[1];
  if (b < 0x80) {
    len = b;
    hdr = 2;
  } else if (b == 0x81) {
    if (d->n < 3 || d->p[2] < 0x80) return false;
    len = d->p[2];
    hdr = 3;
  } else if (b == 0x82) {
    if (d->n < 4) return false;
    len = static_cast<size_t>(d->p[2]) << 8 | d->p[3];
    if (len < 0x100) return false;
    hdr = 4;
  } else {
    return false;
  }
  if (len > d->n - hdr) return false;
  out->p = d->p + hdr;
  out->n = len;
  d->p += hdr + len;
  d->n -= hdr + len;
  return true;
}

template <size_t N>
bool Equal(const Der& d, const flash::Table<uint8_t, N>& v) {
  return d.n == N && flash::Compare(d.p, v, N) == 0;
}

// A positive, minimally encoded INTEGER's magnitude (leading 0 stripped).
bool Magnitude(Der i, Der* out) {
  if (i.n == 0 || (i.p[0] & 0x80) != 0) return false;
  if (i.n >= 2 && i.p[0] == 0) {
    if ((i.p[1] & 0x80) == 0) return false;  // not minimal
    ++i.p;
    --i.n;
  }
  if (i.n == 1 && i.p[0] == 0) return false;  // zero
  *out = i;
  return true;
}

constexpr flash::Table<uint8_t, 7> kOidEc ISOBOX_FLASH = {0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01};  // 1.2.840.10045.2.1
constexpr flash::Table<uint8_t, 8> kOidP256 ISOBOX_FLASH = {0x2A, 0x86, 0x48, 0xCE,
                                                            0x3D, 0x03, 0x01, 0x07};  // 1.2.840.10045.3.1.7
constexpr flash::Table<uint8_t, 9> kOidRsa ISOBOX_FLASH = {0x2A, 0x86, 0x48, 0x86, 0xF7,
                                                           0x0D, 0x01, 0x01, 0x01};  // 1.2.840.113549.1.1.1
// The P-256 field prime, big-endian: coordinates must be below it.
constexpr flash::Table<uint8_t, 32> kP256Prime ISOBOX_FLASH = {
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0,
    0,    0,    0,    0,    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};

PinError CheckEc(Der alg, Der key, KeyInfo* info) {
  Der curve;
  if (!Read(&alg, 0x06, &curve) || alg.n != 0) return PinError::kNotSpki;
  if (!Equal(curve, kOidP256)) return PinError::kEcCurve;
  if (key.n != 65 || key.p[0] != 0x04) return PinError::kEcPoint;
  if (flash::Compare(key.p + 1, kP256Prime, 32) >= 0 || flash::Compare(key.p + 33, kP256Prime, 32) >= 0)
    return PinError::kEcPoint;
  info->kind = KeyKind::kEcP256;
  info->bits = 256;
  return PinError::kOk;
}

PinError CheckRsa(Der alg, Der key, KeyInfo* info) {
  Der params, seq, mod, exp;
  if (!Read(&alg, 0x05, &params) || params.n != 0 || alg.n != 0) return PinError::kNotSpki;
  if (!Read(&key, 0x30, &seq) || key.n != 0) return PinError::kNotSpki;
  if (!Read(&seq, 0x02, &mod) || !Read(&seq, 0x02, &exp) || seq.n != 0) return PinError::kNotSpki;
  if (!Magnitude(mod, &mod) || !Magnitude(exp, &exp)) return PinError::kNotSpki;
  unsigned top = 0;
  for (uint8_t b = mod.p[0]; b != 0; b >>= 1) ++top;
  size_t bits = (mod.n - 1) * 8 + top;
  if (bits < 2048 || bits > 3072 || (mod.p[mod.n - 1] & 1) == 0) return PinError::kRsaSize;
  if (exp.n > 4) return PinError::kRsaExponent;
  uint32_t e = 0;
  for (size_t i = 0; i < exp.n; ++i) e = e << 8 | exp.p[i];
  if (e < 3 || (e & 1) == 0) return PinError::kRsaExponent;
  info->kind = KeyKind::kRsa;
  info->bits = static_cast<uint16_t>(bits);
  return PinError::kOk;
}

// An X.509 certificate: SEQUENCE { SEQUENCE { [0] version ... } ... }.
bool LooksLikeCertificate(const uint8_t* der, size_t n) {
  Der d{der, n}, cert, tbs;
  return Read(&d, 0x30, &cert) && Read(&cert, 0x30, &tbs) && tbs.n > 0 && tbs.p[0] == 0xA0;
}

// --- text ------------------------------------------------------------

bool Space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

const char* SkipSpace(const char* p) {
  while (Space(*p)) ++p;
  return p;
}

int Sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}


// Writes the 3 - pad bytes of a complete group.
bool Flush(uint32_t acc, size_t pad, uint8_t* out, size_t cap, size_t* len) {
  size_t bytes = 3 - pad;
  if (*len + bytes > cap) return false;
  for (size_t i = 0; i < bytes; ++i) out[(*len)++] = static_cast<uint8_t>(acc >> (16 - 8 * i));
  return true;
}

// Decodes strict base64 from *pp up to a '-' or the end (whitespace skipped
// anywhere), leaving *pp there.
PinError DecodeBase64(const char** pp, uint8_t* out, size_t cap, size_t* n) {
  const char* p = *pp;
  uint32_t acc = 0;
  size_t chars = 0, pad = 0, len = 0;
  for (; *p != '\0' && *p != '-'; ++p) {
    if (Space(*p)) continue;
    if (*p == '=') {
      if (++pad > 2) return PinError::kBadBase64;
      acc <<= 6;
      ++chars;
      continue;  // the group is written after the loop: '=' ends the data
    }
    int v = Sextet(*p);
    if (v < 0 || pad > 0) return PinError::kBadBase64;
    acc = acc << 6 | static_cast<uint32_t>(v);
    ++chars;
    if (chars % 4 == 0) {
      if (!Flush(acc, 0, out, cap, &len)) return PinError::kTooLong;
      acc = 0;
    }
  }
  if (chars % 4 != 0) return PinError::kBadBase64;
  if (pad > 0) {
    // The padded group's unused bits must be zero (one encoding per key).
    if ((pad == 1 && (acc & 0xFF) != 0) || (pad == 2 && (acc & 0xFFFF) != 0)) return PinError::kBadBase64;
    if (!Flush(acc, pad, out, cap, &len)) return PinError::kTooLong;
  }
  *pp = p;
  *n = len;
  return PinError::kOk;
}

PinError Parse(const char* text, uint8_t* der, size_t cap, size_t* n, KeyInfo* info) {
  if (text == nullptr) return PinError::kEmpty;
  size_t len = 0;
  while (text[len] != '\0') {
    if (++len > ISOBOX_FW_PIN_TEXT_MAX) return PinError::kTooLong;
  }
  const char* p = SkipSpace(text);
  if (*p == '\0') return PinError::kEmpty;
  size_t k = 0;
  bool armored = flash::StartsWith(p, ISOBOX_FSTR("-----BEGIN "), &k);
  if (armored) {
    p += k;
    if (flash::StartsWith(p, ISOBOX_FSTR("CERTIFICATE-----"))) return PinError::kCertificate;
    if (!flash::StartsWith(p, ISOBOX_FSTR("PUBLIC KEY-----"), &k)) return PinError::kBadBase64;
    p += k;
  }
  PinError e = DecodeBase64(&p, der, cap, n);
  if (e != PinError::kOk) return e;
  if (armored) {
    if (!flash::StartsWith(p, ISOBOX_FSTR("-----END PUBLIC KEY-----"), &k)) return PinError::kBadBase64;
    p += k;
  }
  if (*SkipSpace(p) != '\0') return PinError::kBadBase64;
  if (*n == 0) return PinError::kEmpty;
  e = CheckSpki(der, *n, info);
  if (e == PinError::kNotSpki && LooksLikeCertificate(der, *n)) return PinError::kCertificate;
  return e;
}

// --- SHA-256 ---------------------------------------------------------

constexpr flash::Table<uint32_t, 64> kK ISOBOX_FLASH = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

uint32_t Rotr(uint32_t x, unsigned n) { return x >> n | x << (32 - n); }

void Block(uint32_t h[8], const uint8_t b[64]) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = static_cast<uint32_t>(b[4 * i]) << 24 | static_cast<uint32_t>(b[4 * i + 1]) << 16 |
           static_cast<uint32_t>(b[4 * i + 2]) << 8 | b[4 * i + 3];
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = Rotr(w[i - 15], 7) ^ Rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = Rotr(w[i - 2], 17) ^ Rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t t1 = hh + (Rotr(e, 6) ^ Rotr(e, 11) ^ Rotr(e, 25)) + ((e & f) ^ (~e & g)) + kK[i] + w[i];
    uint32_t t2 = (Rotr(a, 2) ^ Rotr(a, 13) ^ Rotr(a, 22)) + ((a & bb) ^ (a & c) ^ (bb & c));
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = bb;
    bb = a;
    a = t1 + t2;
  }
  h[0] += a;
  h[1] += bb;
  h[2] += c;
  h[3] += d;
  h[4] += e;
  h[5] += f;
  h[6] += g;
  h[7] += hh;
}

}  // namespace

// One sentence per PinError, in the enum's order, then one for a value
// out of range.
constexpr char kPinErrorList[] =
    "ok\0"
    "no key given: paste the line `authprovider tls pin --cert FILE` prints\0"
    "too long: the largest key the board keeps is RSA-3072; use the EC P-256 key `authprovider tls init` makes\0"
    "that is a certificate, not a public key: `authprovider tls pin --cert FILE` prints the key's pin\0"
    "not base64 (or PEM armour other than BEGIN/END PUBLIC KEY)\0"
    "not a DER SubjectPublicKeyInfo\0"
    "not an EC or RSA key\0"
    "EC key on a curve other than P-256\0"
    "EC key is not an uncompressed P-256 point\0"
    "RSA key must have 2048 to 3072 bits\0"
    "RSA exponent must be odd, at least 3, at most 32 bits\0"
    "invalid key";
constexpr flash::Literal<sizeof kPinErrorList> kPinErrors ISOBOX_FLASH{kPinErrorList};

const char* PinErrorText(PinError e, char* buf, size_t cap) {
  return flash::Copy(flash::Nth(kPinErrors, static_cast<size_t>(e)), buf, cap);
}

PinError CheckSpki(const uint8_t* der, size_t n, KeyInfo* info) {
  *info = KeyInfo();
  if (der == nullptr) return PinError::kEmpty;
  Der all{der, n}, spki, alg, oid, bits;
  if (!Read(&all, 0x30, &spki) || all.n != 0) return PinError::kNotSpki;
  if (!Read(&spki, 0x30, &alg) || !Read(&alg, 0x06, &oid)) return PinError::kNotSpki;
  if (!Read(&spki, 0x03, &bits) || spki.n != 0 || bits.n < 1 || bits.p[0] != 0) return PinError::kNotSpki;
  Der key{bits.p + 1, bits.n - 1};
  PinError e;
  if (Equal(oid, kOidEc)) {
    e = CheckEc(alg, key, info);
  } else if (Equal(oid, kOidRsa)) {
    e = CheckRsa(alg, key, info);
  } else {
    e = PinError::kUnsupportedKey;
  }
  if (e != PinError::kOk) *info = KeyInfo();
  return e;
}

PinError ParsePin(const char* text, uint8_t* der, size_t cap, size_t* n, KeyInfo* info) {
  *n = 0;
  *info = KeyInfo();
  PinError e = Parse(text, der, cap, n, info);
  if (e != PinError::kOk) {
    memset(der, 0, cap);
    *n = 0;
    *info = KeyInfo();
  }
  return e;
}

void Sha256(const uint8_t* p, size_t n, uint8_t out[32]) {
  static constexpr flash::Table<uint32_t, 8> kH0 ISOBOX_FLASH = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  uint32_t h[8];
  for (size_t i = 0; i < 8; ++i) h[i] = kH0[i];
  uint8_t block[64];
  size_t full = n / 64;
  for (size_t i = 0; i < full; ++i) Block(h, p + 64 * i);
  size_t rest = n % 64;
  memset(block, 0, sizeof block);
  if (rest > 0) memcpy(block, p + 64 * full, rest);
  block[rest] = 0x80;
  if (rest >= 56) {
    Block(h, block);
    memset(block, 0, sizeof block);
  }
  uint64_t bits = static_cast<uint64_t>(n) * 8;
  for (int i = 0; i < 8; ++i) block[63 - i] = static_cast<uint8_t>(bits >> (8 * i));
  Block(h, block);
  for (int i = 0; i < 8; ++i)
    for (int k = 0; k < 4; ++k) out[4 * i + k] = static_cast<uint8_t>(h[i] >> (24 - 8 * k));
}

size_t Base64Encode(const uint8_t* p, size_t n, char* out, size_t cap) {
  static constexpr flash::Literal<65> kAlphabetText ISOBOX_FLASH{
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"};
  constexpr flash::Str kAlphabet = kAlphabetText.str();
  size_t need = (n + 2) / 3 * 4;
  if (out == nullptr || cap <= need) {
    if (out != nullptr && cap > 0) out[0] = '\0';
    return 0;
  }
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = static_cast<uint32_t>(p[i]) << 16;
    if (i + 1 < n) v |= static_cast<uint32_t>(p[i + 1]) << 8;
    if (i + 2 < n) v |= p[i + 2];
    out[o++] = kAlphabet[v >> 18 & 63];
    out[o++] = kAlphabet[v >> 12 & 63];
    out[o++] = i + 1 < n ? kAlphabet[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? kAlphabet[v & 63] : '=';
  }
  out[o] = '\0';
  return o;
}

void PinFingerprint(const uint8_t* der, size_t n, char out[kFingerprintSize]) {
  uint8_t digest[32];
  Sha256(der, n, digest);
  flash::Copy(ISOBOX_FSTR("sha256//"), out, 9);
  Base64Encode(digest, sizeof digest, out + 8, kFingerprintSize - 8);
}

const char* KeyKindText(const KeyInfo& info, char* buf, size_t cap) {
  switch (info.kind) {
    case KeyKind::kEcP256: return flash::Copy(ISOBOX_FSTR("EC P-256"), buf, cap);
    case KeyKind::kRsa: {
      // "RSA-" and the bits (2048..3072: four digits).
      char rsa[9];
      flash::Copy(ISOBOX_FSTR("RSA-"), rsa, sizeof rsa);
      unsigned b = info.bits % 10000;
      for (int i = 0; i < 4; ++i) rsa[7 - i] = static_cast<char>('0' + b % 10), b /= 10;
      rsa[8] = '\0';
      size_t i = 0;
      for (; i + 1 < cap && rsa[i] != '\0'; ++i) buf[i] = rsa[i];
      if (cap > 0) buf[i] = '\0';
      return buf;
    }
    case KeyKind::kNone: break;
  }
  return flash::Copy(ISOBOX_FSTR("none"), buf, cap);
}

}  // namespace isobox
