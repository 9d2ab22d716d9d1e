#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include <string>

#include "../core/pin.h"
#include "../core/settings.h"
#include "check.h"
#include "fakes.h"
#include "pin_vectors.h"

namespace {

struct Parsed {
  isobox::PinError err;
  size_t n;
  isobox::KeyInfo info;
  uint8_t der[ISOBOX_FW_PIN_MAX];
};

Parsed Parse(const char* text) {
  Parsed p;
  memset(p.der, 0xAA, sizeof p.der);
  p.err = isobox::ParsePin(text, p.der, sizeof p.der, &p.n, &p.info);
  return p;
}

std::string Fingerprint(const Parsed& p) {
  char fp[isobox::kFingerprintSize];
  isobox::PinFingerprint(p.der, p.n, fp);
  return fp;
}

// The base64 text with a character replaced.
std::string With(const char* text, size_t at, char c) {
  std::string s = text;
  s[at] = c;
  return s;
}

}  // namespace

TEST(pin_accepts_p256_and_rsa_2048_to_3072) {
  struct {
    const char* text;
    const char* sha;
    isobox::KeyKind kind;
    unsigned bits;
    size_t n;
  } ok[] = {
      {vectors::kP256, vectors::kP256Sha256, isobox::KeyKind::kEcP256, 256, 91},
      {vectors::kRsa2048, vectors::kRsa2048Sha256, isobox::KeyKind::kRsa, 2048, 294},
      {vectors::kRsa3072, vectors::kRsa3072Sha256, isobox::KeyKind::kRsa, 3072, 422},
  };
  for (const auto& k : ok) {
    Parsed p = Parse(k.text);
    CHECK(p.err == isobox::PinError::kOk);
    CHECK_EQ(p.n, k.n);
    CHECK(p.info.kind == k.kind);
    CHECK_EQ(p.info.bits, k.bits);
    // The fingerprint is what `openssl dgst -sha256 -binary | base64` gives.
    CHECK_STR(Fingerprint(p), std::string("sha256//") + k.sha);
    // The DER round-trips to the same text.
    char again[1024];
    CHECK(isobox::Base64Encode(p.der, p.n, again, sizeof again) > 0);
    CHECK_STR(again, k.text);
  }
  // The largest key fills the buffer exactly (its base64 ends in padding).
  Parsed big = Parse(vectors::kRsa3072);
  CHECK_EQ(big.n, ISOBOX_FW_PIN_MAX);
}

TEST(pin_refuses_other_keys_with_a_reason) {
  struct {
    const char* text;
    isobox::PinError want;
  } bad[] = {
      {vectors::kP384, isobox::PinError::kEcCurve},
      {vectors::kRsa1024, isobox::PinError::kRsaSize},
      {vectors::kRsa4096, isobox::PinError::kTooLong},  // 550 bytes: over the settings' room
      {vectors::kEd25519, isobox::PinError::kUnsupportedKey},
      {vectors::kP256Cert, isobox::PinError::kCertificate},
      {"", isobox::PinError::kEmpty},
      {" \n\t", isobox::PinError::kEmpty},
      {"MFkw EwYH!", isobox::PinError::kBadBase64},
      {"AAAA", isobox::PinError::kNotSpki},
      {"-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n", isobox::PinError::kBadBase64},
  };
  for (const auto& b : bad) {
    Parsed p = Parse(b.text);
    if (p.err != b.want) fprintf(stderr, "  %.20s...: got %d want %d\n", b.text, int(p.err), int(b.want));
    CHECK(p.err == b.want);
    CHECK_EQ(p.n, 0);
    CHECK(p.info.kind == isobox::KeyKind::kNone);
    // Nothing of a refused key is left behind.
    bool zero = true;
    for (uint8_t c : p.der) zero = zero && c == 0;
    CHECK(zero);
    char text[isobox::kPinErrorTextSize];
    CHECK(strlen(isobox::PinErrorText(p.err, text, sizeof text)) > 10);
  }
  CHECK(Parse(nullptr).err == isobox::PinError::kEmpty);
  // A certificate given as bare base64 (no armour) is recognised too.
  std::string cert = vectors::kP256Cert;
  size_t from = cert.find('\n') + 1, to = cert.find("-----END");
  CHECK(Parse(cert.substr(from, to - from).c_str()).err == isobox::PinError::kCertificate);
}

TEST(pin_text_forms) {
  Parsed plain = Parse(vectors::kP256);
  // PEM as `openssl pkey -pubout` prints it, and whitespace anywhere.
  Parsed pem = Parse(vectors::kP256Pem);
  CHECK(pem.err == isobox::PinError::kOk);
  CHECK_EQ(pem.n, plain.n);
  CHECK(memcmp(pem.der, plain.der, plain.n) == 0);
  std::string spaced = std::string("  \r\n") + vectors::kP256 + " \n";
  spaced.insert(20, "\n  ");
  CHECK(Parse(spaced.c_str()).err == isobox::PinError::kOk);
  // Armour that does not close, or text after it.
  std::string open = vectors::kP256Pem;
  CHECK(Parse(open.substr(0, open.find("-----END")).c_str()).err == isobox::PinError::kBadBase64);
  CHECK(Parse((open + "x").c_str()).err == isobox::PinError::kBadBase64);
  // Strict base64: padding only at the end, no extra '=', unused bits zero.
  size_t len = strlen(vectors::kP256);  // ends in "=="
  CHECK(Parse(std::string(vectors::kP256, len - 1).c_str()).err == isobox::PinError::kBadBase64);
  CHECK(Parse((std::string(vectors::kP256) + "=").c_str()).err == isobox::PinError::kBadBase64);
  CHECK(Parse((std::string(vectors::kP256) + "AAAA").c_str()).err == isobox::PinError::kBadBase64);
  CHECK(Parse(With(vectors::kP256, len - 3, 'h').c_str()).err == isobox::PinError::kBadBase64);  // 'g'+1: unused bit set
  CHECK(Parse(With(vectors::kP256, 10, '*').c_str()).err == isobox::PinError::kBadBase64);
  // Longer than the page's limit.
  std::string huge(ISOBOX_FW_PIN_TEXT_MAX + 1, 'A');
  CHECK(Parse(huge.c_str()).err == isobox::PinError::kTooLong);
}

TEST(pin_der_is_strict) {
  Parsed p = Parse(vectors::kP256);
  isobox::KeyInfo info;
  CHECK(isobox::CheckSpki(p.der, p.n, &info) == isobox::PinError::kOk);
  // Every truncation and every longer buffer is refused.
  for (size_t n = 0; n < p.n; ++n) CHECK(isobox::CheckSpki(p.der, n, &info) != isobox::PinError::kOk);
  uint8_t longer[128] = {};
  memcpy(longer, p.der, p.n);
  CHECK(isobox::CheckSpki(longer, p.n + 1, &info) == isobox::PinError::kNotSpki);
  // A non-minimal length (0x81 0x59 for 89) is refused.
  uint8_t nonmin[128];
  nonmin[0] = 0x30;
  nonmin[1] = 0x81;
  nonmin[2] = 0x59;
  memcpy(nonmin + 3, p.der + 2, p.n - 2);
  CHECK(isobox::CheckSpki(nonmin, p.n + 1, &info) == isobox::PinError::kNotSpki);
  // A compressed point, and a coordinate not below the field prime.
  uint8_t k[ISOBOX_FW_PIN_MAX];
  memcpy(k, p.der, p.n);
  k[26] = 0x02;  // the point's first byte: 04 = uncompressed
  CHECK(isobox::CheckSpki(k, p.n, &info) == isobox::PinError::kEcPoint);
  memcpy(k, p.der, p.n);
  memset(k + 27, 0xFF, 32);
  CHECK(isobox::CheckSpki(k, p.n, &info) == isobox::PinError::kEcPoint);
  // A bit string with unused bits.
  memcpy(k, p.der, p.n);
  k[25] = 0x01;
  CHECK(isobox::CheckSpki(k, p.n, &info) == isobox::PinError::kNotSpki);
  // Every single-byte change of the RSA key is refused or still a valid
  // key (e.g. another modulus): never a crash, never an invalid accept.
  Parsed r = Parse(vectors::kRsa2048);
  for (size_t i = 0; i < r.n; ++i) {
    uint8_t m[ISOBOX_FW_PIN_MAX];
    memcpy(m, r.der, r.n);
    m[i] ^= 0x80;
    isobox::PinError e = isobox::CheckSpki(m, r.n, &info);
    if (e == isobox::PinError::kOk) CHECK(info.kind == isobox::KeyKind::kRsa && info.bits >= 2048);
  }
  // An even exponent, and an even modulus.
  memcpy(k, r.der, r.n);
  CHECK_EQ(k[r.n - 1], 0x01);  // 65537 = 01 00 01
  k[r.n - 1] = 0x02;
  CHECK(isobox::CheckSpki(k, r.n, &info) == isobox::PinError::kRsaExponent);
  memcpy(k, r.der, r.n);
  k[r.n - 6] ^= 0x01;  // the modulus' last byte (then 02 03 01 00 01)
  CHECK(isobox::CheckSpki(k, r.n, &info) == isobox::PinError::kRsaSize);
}

TEST(pin_sha256_matches_openssl) {
  uint8_t data[300];
  for (size_t i = 0; i < sizeof data; ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
  for (size_t n = 0; n <= sizeof data; ++n) {
    uint8_t a[32], b[32];
    isobox::Sha256(data, n, a);
    SHA256(data, n, b);
    if (memcmp(a, b, 32) != 0) fprintf(stderr, "  length %zu\n", n);
    CHECK(memcmp(a, b, 32) == 0);
  }
  char out[8];
  CHECK_EQ(isobox::Base64Encode(data, 6, out, sizeof out), 0);  // needs 9 bytes
  CHECK_STR(out, "");
  char fits[9];
  CHECK_EQ(isobox::Base64Encode(data, 6, fits, sizeof fits), 8);
}

TEST(settings_transport_needs_a_valid_pin_for_wss) {
  isobox::Settings s;
  memset(&s, 0, sizeof s);
  char why[isobox::kPinErrorTextSize];
  CHECK(isobox::CheckTransport(s, why, sizeof why) == nullptr);  // ws://, chosen
  s.tls = isobox::kPinnedWss;
  CHECK(isobox::CheckTransport(s, why, sizeof why) == why);  // wss:// without a pin
  CHECK(strstr(why, "wss:// needs eventrelay's public key") == why);
  size_t n = 0;
  isobox::KeyInfo info;
  CHECK(isobox::ParsePin(vectors::kP256, s.pin, sizeof s.pin, &n, &info) == isobox::PinError::kOk);
  s.pin_len = static_cast<uint16_t>(n);
  CHECK(isobox::CheckTransport(s, why, sizeof why) == nullptr);
  s.pin[0] = 0x31;  // no longer a SEQUENCE
  CHECK(isobox::CheckTransport(s, why, sizeof why) != nullptr);
  CHECK_STR(why, "not a DER SubjectPublicKeyInfo");
  s.tls = 7;
  CHECK(isobox::CheckTransport(s, why, sizeof why) != nullptr);
  CHECK_STR(why, "unknown transport");
}
