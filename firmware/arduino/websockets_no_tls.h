// Forced (-include) into every translation unit that sees the WebSockets
// library by `make esp8266` with ESP8266_TLS=0 (the default while the
// adapter refuses wss://, core/ws_transport.h): the library defines HAS_SSL
// unconditionally on the ESP8266, which makes its client create a
// WiFiClientSecure and so links BearSSL (~100 KB of flash) that a plain
// ws:// board never runs. Its header is include-guarded, so taking it in
// first and dropping HAS_SSL builds the library's own no-TLS variant (the
// one it uses on boards without TLS). Every TU including WebSockets.h must
// get this header, or the client's layout differs between them.
#pragma once
#include <WebSockets.h>
#undef HAS_SSL
