#!/bin/sh
# Checks the inputs of `make emulate` and says what is missing and how to
# provide it. Exit 0 when everything is there, 1 otherwise.
#   emulate-check.sh CORE CORE_COMMIT WEBSOCKETS WEBSOCKETS_COMMIT BEARSSL BEARSSL_COMMIT
CORE=$1 CORE_COMMIT=$2 WS=$3 WS_COMMIT=$4 BR=$5 BR_COMMIT=$6
TARGET=emulate
. "$(dirname "$0")/inputs.sh"
command -v "${CXX:-g++}" >/dev/null 2>&1 && command -v "${CC:-gcc}" >/dev/null 2>&1 && command -v make >/dev/null 2>&1 ||
  say "needs gcc, g++ and make (apt-get install build-essential; g++-multilib for the 32-bit build, as on the chip)"
if [ -z "$CORE" ] || [ ! -f "$CORE/tests/host/Makefile" ] || [ ! -f "$CORE/libraries/ESP8266WiFi/src/WiFiClientSecureBearSSL.cpp" ]; then
  say "ESP8266_CORE=${CORE:-(unset)} is not a tree of the ESP8266 Arduino core with its host emulation (tests/host): give ESP8266_CORE=/path/to/esp8266-Arduino, e.g. git clone https://github.com/esp8266/Arduino && git -C Arduino checkout $CORE_COMMIT (or git archive $CORE_COMMIT | tar -x); its submodules are not needed"
else pinned "$CORE" "$CORE_COMMIT" "ESP8266_CORE"; fi
if [ -z "$WS" ] || [ ! -f "$WS/src/WebSocketsClient.cpp" ]; then
  say "WEBSOCKETS=${WS:-(unset)} is not a tree of Links2004/arduinoWebSockets: give WEBSOCKETS=/path/to/arduinoWebSockets at $WS_COMMIT"
else pinned "$WS" "$WS_COMMIT" "WEBSOCKETS"; fi
if [ -z "$BR" ] || [ ! -f "$BR/conf/Unix32.mk" ] || [ ! -f "$BR/src/ssl/ssl_engine.c" ]; then
  say "BEARSSL=${BR:-(unset)} is not a tree of earlephilhower/bearssl-esp8266 (the core's tools/sdk/ssl/bearssl submodule, built here for the PC into firmware/build): give BEARSSL=/path/to/bearssl-esp8266 at $BR_COMMIT"
else pinned "$BR" "$BR_COMMIT" "BEARSSL"; fi
[ $missing -eq 0 ] || { echo "make emulate: inputs missing (see above); firmware/README.md \"The sketch under the core's host emulation\" says how to get them" >&2; exit 1; }
