// The pin of eventrelay's key comes from the setup page (a person's paste)
// and from the flash image: the text parser and the DER check get any bytes.
// What an accepted pin promises: at most ISOBOX_FW_PIN_MAX bytes, a DER
// key CheckSpki accepts, of a supported kind, whose base64 parses back to
// the same bytes; a refused one leaves nothing behind.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/pin.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static char text[ISOBOX_FW_PIN_TEXT_MAX + 2];
  size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
  if (n > 0) memcpy(text, data, n);
  text[n] = '\0';
  static uint8_t der[ISOBOX_FW_PIN_MAX];
  size_t len = 99999;
  isobox::KeyInfo info;
  isobox::PinError e = isobox::ParsePin(text, der, sizeof der, &len, &info);
  if (e == isobox::PinError::kOk) {
    if (len == 0 || len > sizeof der || info.kind == isobox::KeyKind::kNone) abort();
    isobox::KeyInfo again;
    if (isobox::CheckSpki(der, len, &again) != isobox::PinError::kOk || again.kind != info.kind) abort();
    static char b64[ISOBOX_FW_PIN_MAX * 4 / 3 + 8];
    if (isobox::Base64Encode(der, len, b64, sizeof b64) == 0) abort();
    static uint8_t back[ISOBOX_FW_PIN_MAX];
    size_t blen = 0;
    if (isobox::ParsePin(b64, back, sizeof back, &blen, &again) != isobox::PinError::kOk || blen != len ||
        memcmp(back, der, len) != 0)
      abort();
    char fp[isobox::kFingerprintSize];
    isobox::PinFingerprint(der, len, fp);
    if (strlen(fp) != isobox::kFingerprintSize - 1) abort();
  } else {
    if (len != 0 || info.kind != isobox::KeyKind::kNone) abort();
    for (uint8_t b : der)
      if (b != 0) abort();
    char why[isobox::kPinErrorTextSize];
    if (strlen(isobox::PinErrorText(e, why, sizeof why)) < 2) abort();
  }
  // The raw bytes as DER (the flash image's pin field).
  isobox::CheckSpki(data, size, &info);
  return 0;
}
