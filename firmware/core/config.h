// All sizes and timings of the portable core, in one place. Each can be
// overridden with -D (or a #define before the first include); the host
// tests build the core with tiny values to exercise the limits.
#ifndef ISOBOX_FW_CONFIG_H
#define ISOBOX_FW_CONFIG_H

// Longest Push & Pull message (the JSON between the frame markers) that is
// parsed. The portal adds ~250 bytes of `extra` to every command, so 1 KiB
// leaves ~750 bytes for params. A longer message is skipped and counted.
#ifndef ISOBOX_FW_MSG_MAX
#define ISOBOX_FW_MSG_MAX 1024
#endif

// Deepest JSON nesting accepted (objects and arrays). Bounds the scanner's
// recursion, so a hostile `[[[[...` cannot exhaust the 4 KiB ESP8266 stack.
#ifndef ISOBOX_FW_JSON_DEPTH
#define ISOBOX_FW_JSON_DEPTH 12
#endif

// Longest relay (device) name, without the terminating NUL.
#ifndef ISOBOX_FW_NAME_MAX
#define ISOBOX_FW_NAME_MAX 31
#endif

// Number of relay outputs one board drives.
#ifndef ISOBOX_FW_RELAYS_MAX
#define ISOBOX_FW_RELAYS_MAX 4
#endif

// Longest signed channel id: 32 hex [":" 32 hex] "." up to 128 hex (HMAC-SHA512).
#ifndef ISOBOX_FW_CHANNEL_MAX
#define ISOBOX_FW_CHANNEL_MAX 194
#endif

// Longest eventrelay host name or address.
#ifndef ISOBOX_FW_HOST_MAX
#define ISOBOX_FW_HOST_MAX 63
#endif

// Longest device name sent as device= (DeviceId makes 25 characters).
#ifndef ISOBOX_FW_DEVICE_ID_MAX
#define ISOBOX_FW_DEVICE_ID_MAX 31
#endif

// Longest subscribe URL (scheme, host, port, path, channel, mid,
// frameBytes, device). 384 holds the longest of each: wss://, a 63-byte
// host, port 65535, a 194-byte composite channel (":" sent as %3A), a mid,
// a 5-digit frameBytes and a 31-byte device name.
#ifndef ISOBOX_FW_URL_MAX
#define ISOBOX_FW_URL_MAX 384
#endif

// Largest pinned eventrelay public key: the DER SubjectPublicKeyInfo of an
// RSA-3072 key (422 bytes; P-256 is 91, RSA-2048 294). It is kept in the
// settings sector, which has room for this and not for RSA-4096 (550).
#ifndef ISOBOX_FW_PIN_MAX
#define ISOBOX_FW_PIN_MAX 422
#endif

// Longest pin text accepted from the setup page: base64 of the above with
// PEM armour and line breaks (about 640 characters), with room to spare.
#ifndef ISOBOX_FW_PIN_TEXT_MAX
#define ISOBOX_FW_PIN_TEXT_MAX 1024
#endif

// Wi-Fi credentials (802.11 limits).
#ifndef ISOBOX_FW_SSID_MAX
#define ISOBOX_FW_SSID_MAX 32
#endif
#ifndef ISOBOX_FW_PASS_MAX
#define ISOBOX_FW_PASS_MAX 64
#endif

// A connection that stayed open this long counts as stable: the back-off
// starts again from its first step when it drops.
#ifndef ISOBOX_FW_STABLE_MS
#define ISOBOX_FW_STABLE_MS 60000u
#endif

// Back-off jitter: each delay is stretched by 0..ISOBOX_FW_JITTER_PERMILLE/1000
// (the Bitrix client adds 0-20 %).
#ifndef ISOBOX_FW_JITTER_PERMILLE
#define ISOBOX_FW_JITTER_PERMILLE 200u
#endif

// Longest single back-off step. The Bitrix handbook's schedule ends at one
// hour; a board that must react soon after a LAN outage can lower it.
#ifndef ISOBOX_FW_BACKOFF_CAP_MS
#define ISOBOX_FW_BACKOFF_CAP_MS 3600000u
#endif

// A WebSocket that has not opened this long after Open counts as failed.
#ifndef ISOBOX_FW_CONNECT_TIMEOUT_MS
#define ISOBOX_FW_CONNECT_TIMEOUT_MS 15000u
#endif

// Largest WebSocket frame the device asks eventrelay for (frameBytes= in
// the subscribe URL; eventrelay cuts replays into frames of at most this,
// 12 KiB by default, at least 1 KiB). 0 = not asked. Needed when the
// WebSocket library's buffer is smaller than 12 KiB, e.g. beside TLS.
#ifndef ISOBOX_FW_FRAME_BYTES
#define ISOBOX_FW_FRAME_BYTES 0
#endif

// An open connection on which nothing arrived this long (no message, no
// ping from eventrelay, which pings every 45 s by default, no pong to the
// heartbeat) is closed and counted as a failure.
#ifndef ISOBOX_FW_SILENCE_MS
#define ISOBOX_FW_SILENCE_MS 120000u
#endif

// The setup button held this long opens the setup access point.
#ifndef ISOBOX_FW_BUTTON_HOLD_MS
#define ISOBOX_FW_BUTTON_HOLD_MS 5000u
#endif

// A boot that ran this long was not part of a boot loop.
#ifndef ISOBOX_FW_STABLE_BOOT_MS
#define ISOBOX_FW_STABLE_BOOT_MS 60000u
#endif

// Boots in a row shorter than ISOBOX_FW_STABLE_BOOT_MS before safe mode.
#ifndef ISOBOX_FW_BOOT_LOOP_MAX
#define ISOBOX_FW_BOOT_LOOP_MAX 4u
#endif

#endif  // ISOBOX_FW_CONFIG_H
