// The subscribe URL of eventrelay's Push & Pull channel:
// ws://host:port/bitrix/subws/?CHANNEL_ID=<id>.<sig>[&mid=<26 digits>]
//   [&frameBytes=<n>][&device=<name>]
#ifndef ISOBOX_FW_URL_H
#define ISOBOX_FW_URL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

namespace isobox {

struct Endpoint {
  const char* host;  // name or IPv4 address: letters, digits, '.', '-'
  uint16_t port;     // 1..65535
  bool secure;       // wss:// (eventrelay's TLS listener; the transport pins its key)
};

// Writes the URL into out (NUL-terminated) and returns its length, or 0
// when an input is malformed (host, signed channel id, mid or device when
// not empty) or the URL does not fit in cap bytes. `:` in a composite id
// is sent as %3A, which the push server decodes. device is the board's
// name (device=, see DeviceId in device.h); nullptr or "" sends none.
size_t BuildSubscribeUrl(const Endpoint& ep, const char* channel, const char* mid, char* out,
                         size_t cap, const char* device = nullptr);

// A device name eventrelay accepts and the URL carries unescaped: 1 to
// ISOBOX_FW_DEVICE_ID_MAX of ASCII letters, digits, '.', '_', '-'
// (eventrelay takes up to 64; the board keeps less).
bool IsDeviceId(const char* id);

// A URL built by BuildSubscribeUrl taken apart again for a WebSocket
// library that wants host, port and path separately.
struct WsTarget {
  char host[ISOBOX_FW_HOST_MAX + 1];
  uint16_t port;
  const char* path;  // points into the URL that was split: "/bitrix/subws/?..."
  bool secure;
};

// Splits ws[s]://host:port/path; false (and *out untouched) when the URL
// is not of that form, the host is not a valid name or too long, or the
// port is not 1..65535.
bool SplitWsUrl(const char* url, WsTarget* out);

}  // namespace isobox

#endif  // ISOBOX_FW_URL_H
