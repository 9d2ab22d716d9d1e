// The subscribe URL of eventrelay's Push & Pull channel:
// ws://host:port/bitrix/subws/?CHANNEL_ID=<id>.<sig>[&mid=<26 digits>]
#ifndef ISOBOX_FW_URL_H
#define ISOBOX_FW_URL_H

#include <stddef.h>
#include <stdint.h>

namespace isobox {

struct Endpoint {
  const char* host;  // name or IPv4 address: letters, digits, '.', '-'
  uint16_t port;     // 1..65535
  bool secure;       // wss:// (the Arduino shim speaks only ws:// today)
};

// Writes the URL into out (NUL-terminated) and returns its length, or 0
// when an input is malformed (host, signed channel id, mid when not empty)
// or the URL does not fit in cap bytes. `:` in a composite id is sent as
// %3A, which the push server decodes.
size_t BuildSubscribeUrl(const Endpoint& ep, const char* channel, const char* mid, char* out,
                         size_t cap);

}  // namespace isobox

#endif  // ISOBOX_FW_URL_H
