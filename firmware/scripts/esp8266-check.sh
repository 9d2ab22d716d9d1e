#!/bin/sh
# Checks the inputs of `make esp8266` and says what is missing and how to
# provide it. Exit 0 when everything is there, 1 otherwise.
#   esp8266-check.sh CORE CORE_COMMIT WEBSOCKETS WEBSOCKETS_COMMIT LIBS HAL HAL_COMMIT
CORE=$1 CORE_COMMIT=$2 WS=$3 WS_COMMIT=$4 LIBS=$5 HAL=$6 HAL_COMMIT=$7
T=xtensa-lx106-elf
TARGET=esp8266
. "$(dirname "$0")/inputs.sh"
command -v $T-gcc >/dev/null 2>&1 && command -v $T-g++ >/dev/null 2>&1 && command -v $T-size >/dev/null 2>&1 ||
  say "no xtensa toolchain: apt-get install gcc-xtensa-lx106 binutils-xtensa-lx106 (Debian 12; do not install picolibc-xtensa-lx106-elf, its headers shadow newlib)"
command -v python3 >/dev/null 2>&1 || say "needs python3 (the core's elf2bin.py, makecorever.py)"
if [ -z "$CORE" ] || [ ! -f "$CORE/cores/esp8266/Arduino.h" ] || [ ! -f "$CORE/tools/sdk/lib/libhal.a" ]; then
  say "ESP8266_CORE=${CORE:-(unset)} is not a tree of the ESP8266 Arduino core: give ESP8266_CORE=/path/to/esp8266-Arduino, e.g. git clone https://github.com/esp8266/Arduino && git -C Arduino checkout $CORE_COMMIT (or git archive $CORE_COMMIT | tar -x)"
else pinned "$CORE" "$CORE_COMMIT" "ESP8266_CORE"; fi
if [ -z "$WS" ] || [ ! -f "$WS/src/WebSocketsClient.cpp" ]; then
  say "WEBSOCKETS=${WS:-(unset)} is not a tree of Links2004/arduinoWebSockets: give WEBSOCKETS=/path/to/arduinoWebSockets at $WS_COMMIT"
else pinned "$WS" "$WS_COMMIT" "WEBSOCKETS"; fi
if [ -z "$LIBS" ] || [ ! -f "$LIBS/$T/lib/libc.a" ] || [ ! -f "$LIBS/$T/include/sys/pgmspace.h" ] ||
   { [ ! -f "$LIBS/lib/libstdc++.a" ] && [ ! -f "$LIBS/$T/lib/libstdc++.a" ]; } || [ ! -f "$LIBS/lib/libbearssl.a" ]; then
  say "ESP8266_LIBS=${LIBS:-(unset)} lacks newlib, libstdc++ or libbearssl.a for $T (the core's git repository does not carry them): build them once with make -C firmware esp8266-libs ESP8266_LIBS=/out/dir NEWLIB=/path/newlib-xtensa BEARSSL=/path/bearssl-esp8266 (apt-get install gcc-12-source first), then pass the same ESP8266_LIBS"
fi
if [ -z "$HAL" ] || [ ! -f "$HAL/include/xtensa/coreasm.h" ]; then
  say "XTENSA_HAL=${HAL:-(unset)} is not a tree of tommie/lx106-hal (the Xtensa HAL headers the core's exception wrapper includes; Debian's toolchain has none): give XTENSA_HAL=/path/to/lx106-hal at $HAL_COMMIT"
else pinned "$HAL" "$HAL_COMMIT" "XTENSA_HAL"; fi
[ $missing -eq 0 ] || { echo "make esp8266: inputs missing (see above); firmware/README.md \"Building the .bin offline\" says how to get them" >&2; exit 1; }
