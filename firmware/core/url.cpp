#include "url.h"

#include <string.h>

#include "flash.h"
#include "message.h"

namespace isobox {
namespace {

struct Writer {
  char* out;
  size_t cap;
  size_t n = 0;
  bool ok = true;

  void Put(char c) {
    if (n + 1 >= cap) {
      ok = false;
      return;
    }
    out[n++] = c;
  }
  void Put(const char* s) {
    while (*s) Put(*s++);
  }
  void Put(flash::Str s) {
    for (size_t i = 0; s[i] != '\0'; ++i) Put(s[i]);
  }
  void PutUint(unsigned v) {
    char digits[6];
    int i = 0;
    do {
      digits[i++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (i > 0) Put(digits[--i]);
  }
};

bool IsHostName(const char* h) {
  if (h == nullptr || *h == '\0' || strlen(h) > 253) return false;
  for (; *h; ++h) {
    char c = *h;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

bool IsDeviceId(const char* id) {
  if (id == nullptr || *id == '\0') return false;
  size_t n = 0;
  for (; *id; ++id, ++n) {
    char c = *id;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok || n >= ISOBOX_FW_DEVICE_ID_MAX) return false;
  }
  return true;
}

size_t BuildSubscribeUrl(const Endpoint& ep, const char* channel, const char* mid, char* out,
                         size_t cap, const char* device) {
  if (out == nullptr || cap == 0) return 0;
  out[0] = '\0';
  if (!IsHostName(ep.host) || ep.port == 0 || !IsSignedChannelId(channel)) return 0;
  bool withMid = mid != nullptr && *mid != '\0';
  if (withMid && !IsMid(mid)) return 0;
  bool withDevice = device != nullptr && *device != '\0';
  if (withDevice && !IsDeviceId(device)) return 0;
  Writer w{out, cap};
  w.Put(ep.secure ? ISOBOX_FSTR("wss://") : ISOBOX_FSTR("ws://"));
  w.Put(ep.host);
  w.Put(':');
  w.PutUint(ep.port);
  w.Put(ISOBOX_FSTR("/bitrix/subws/?CHANNEL_ID="));
  for (const char* c = channel; *c; ++c) {
    if (*c == ':') {
      w.Put(ISOBOX_FSTR("%3A"));
    } else {
      w.Put(*c);
    }
  }
  if (withMid) {
    w.Put(ISOBOX_FSTR("&mid="));
    w.Put(mid);
  }
  if (ISOBOX_FW_FRAME_BYTES > 0) {
    w.Put(ISOBOX_FSTR("&frameBytes="));
    w.PutUint(ISOBOX_FW_FRAME_BYTES);
  }
  if (withDevice) {
    w.Put(ISOBOX_FSTR("&device="));
    w.Put(device);
  }
  if (!w.ok) {
    out[0] = '\0';
    return 0;
  }
  out[w.n] = '\0';
  return w.n;
}

bool SplitWsUrl(const char* url, WsTarget* out) {
  if (url == nullptr || out == nullptr) return false;
  bool secure;
  const char* p;
  size_t k = 0;
  if (flash::StartsWith(url, ISOBOX_FSTR("ws://"), &k)) {
    secure = false;
    p = url + k;
  } else if (flash::StartsWith(url, ISOBOX_FSTR("wss://"), &k)) {
    secure = true;
    p = url + k;
  } else {
    return false;
  }
  const char* colon = strchr(p, ':');
  const char* slash = strchr(p, '/');
  if (colon == nullptr || slash == nullptr || colon > slash) return false;
  size_t hostLen = static_cast<size_t>(colon - p);
  if (hostLen == 0 || hostLen > ISOBOX_FW_HOST_MAX) return false;
  char host[ISOBOX_FW_HOST_MAX + 1];
  memcpy(host, p, hostLen);
  host[hostLen] = '\0';
  if (!IsHostName(host)) return false;
  uint32_t port = 0;
  const char* d = colon + 1;
  if (d == slash) return false;
  for (; d < slash; ++d) {
    if (*d < '0' || *d > '9') return false;
    port = port * 10 + static_cast<uint32_t>(*d - '0');
    if (port > 65535) return false;
  }
  if (port == 0) return false;
  memcpy(out->host, host, hostLen + 1);
  out->port = static_cast<uint16_t>(port);
  out->path = slash;
  out->secure = secure;
  return true;
}

}  // namespace isobox
