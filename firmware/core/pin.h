// eventrelay's public key, pinned on the board for wss://.
//
// The pin is the key itself — the DER SubjectPublicKeyInfo, given as its
// base64 text — not a hash of it: BearSSL's known-key mode
// (WiFiClientSecure::setKnownKey) takes the key and then never parses the
// server's certificate at all (no chain, no dates the board could not check
// without a clock, no names), so the board needs no X.509 code and a
// certificate renewed with the same key keeps working. A SHA-256 of the key
// ("sha256//<base64>", the form curl's --pinnedpubkey takes) is only shown,
// on the status page and by `authprovider tls pin`, to compare by eye.
//
// Accepted: EC P-256 (what `authprovider tls init` makes) and RSA of 2048 to
// 3072 bits (larger keys do not fit the settings sector). Everything from the
// setup page is checked here: strict base64 (PEM armour "BEGIN PUBLIC KEY"
// and whitespace allowed), strict DER, the algorithm and its parameters.
#ifndef ISOBOX_FW_PIN_H
#define ISOBOX_FW_PIN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

namespace isobox {

enum class PinError : uint8_t {
  kOk,
  kEmpty,           // no text
  kTooLong,         // text over ISOBOX_FW_PIN_TEXT_MAX, or a key over ISOBOX_FW_PIN_MAX bytes
  kCertificate,     // a PEM certificate instead of the key
  kBadBase64,       // not base64, or PEM armour not BEGIN/END PUBLIC KEY
  kNotSpki,         // base64, but not a DER SubjectPublicKeyInfo
  kUnsupportedKey,  // an algorithm other than EC and RSA
  kEcCurve,         // EC on a curve other than P-256
  kEcPoint,         // not an uncompressed P-256 point
  kRsaSize,         // RSA modulus not 2048..3072 bits
  kRsaExponent,     // RSA exponent not odd, >= 3, <= 32 bits
};

// A sentence for the setup page and the serial log, copied into buf (cap
// bytes; kPinErrorTextSize holds the longest) and returned. The sentences
// live in flash (flash.h).
constexpr size_t kPinErrorTextSize = 112;
const char* PinErrorText(PinError e, char* buf, size_t cap);

enum class KeyKind : uint8_t { kNone, kEcP256, kRsa };

struct KeyInfo {
  KeyKind kind = KeyKind::kNone;
  uint16_t bits = 0;  // 256 for P-256, the modulus size for RSA
};

// Checks a DER SubjectPublicKeyInfo (the whole of der[0..n)).
PinError CheckSpki(const uint8_t* der, size_t n, KeyInfo* info);

// Parses the setup page's text into der (cap bytes), *n = its length.
// On an error *n is 0 and der is zeroed.
PinError ParsePin(const char* text, uint8_t* der, size_t cap, size_t* n, KeyInfo* info);

// "sha256//" + base64(SHA-256(der)): 52 characters and a NUL.
constexpr size_t kFingerprintSize = 8 + 44 + 1;
void PinFingerprint(const uint8_t* der, size_t n, char out[kFingerprintSize]);

// SHA-256 (FIPS 180-4).
void Sha256(const uint8_t* p, size_t n, uint8_t out[32]);

// Standard base64 with padding; returns the length written (without the
// NUL), or 0 if it does not fit in cap.
size_t Base64Encode(const uint8_t* p, size_t n, char* out, size_t cap);

// "EC P-256", "RSA-2048", ... for the status page, written into buf (cap
// bytes, 16 is enough) and returned.
const char* KeyKindText(const KeyInfo& info, char* buf, size_t cap);

}  // namespace isobox

#endif  // ISOBOX_FW_PIN_H
