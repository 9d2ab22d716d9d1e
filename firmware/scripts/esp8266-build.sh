#!/bin/sh
# Builds the relay sketch for a NodeMCU v2 (ESP-12E, 4 MB flash, 80 MHz, lwIP
# "lower memory" 536-byte MSS, no exceptions, vtables in flash: the Arduino
# IDE's defaults for nodemcuv2) with Debian's gcc-xtensa-lx106, the way the
# ESP8266 Arduino core's platform.txt does, without arduino-cli. Run by
# `make -C firmware esp8266`, which checks the inputs first; see the Makefile.
#
#   esp8266-build.sh FIRMWARE_DIR ESP8266_CORE WEBSOCKETS ESP8266_LIBS XTENSA_HAL OUT
#
# Leaves OUT/isobox_relay.{elf,map,bin} and OUT/size.txt, and fails when a
# budget (DRAM_MAX, IRAM_MAX, FLASH_MAX, bytes; environment) is exceeded.
set -eu
FW=$(cd "$1" && pwd); CORE=$(cd "$2" && pwd); WS=$(cd "$3" && pwd)
LIBS=$(cd "$4" && pwd); HAL=$(cd "$5" && pwd); OUT=$(mkdir -p "$6" && cd "$6" && pwd)
DRAM_MAX=${DRAM_MAX:?}; IRAM_MAX=${IRAM_MAX:?}; FLASH_MAX=${FLASH_MAX:?}
JOBS=${JOBS:-2}
T=xtensa-lx106-elf
SDK=NONOSDK22x_190703
CXXINC=$(ls -d "$LIBS"/include/c++/* "$LIBS"/$T/include/c++/* 2>/dev/null | head -1)
[ -n "$CXXINC" ] || { echo "no libstdc++ headers under $LIBS (run firmware/scripts/esp8266-libs.sh)" >&2; exit 1; }
LIBDIRS=""
for d in "$LIBS/$T/lib" "$LIBS/lib"; do [ -d "$d" ] && LIBDIRS="$LIBDIRS -L$d"; done

mkdir -p "$OUT/core" "$OUT/obj"
: >"$OUT/core/build.opt"
python3 -I "$CORE/tools/makecorever.py" --git-root "$CORE" \
  --version "$(sed -n 's/^version=//p' "$CORE/platform.txt")" "$OUT/core/core_version.h" >/dev/null
# No signing key: the header that says so (the IDE does the same without one).
python3 -I "$CORE/tools/signing.py" --mode header --publickey "$FW/arduino/isobox_relay/public.key" \
  --out "$OUT/core/Updater_Signing.h" >/dev/null 2>&1 || : >"$OUT/core/Updater_Signing.h"

MMU="-DMMU_IRAM_SIZE=0x8000 -DMMU_ICACHE_SIZE=0x8000"
DEFS="-D__ets__ -DICACHE_FLASH -U__STRICT_ANSI__ -D_GNU_SOURCE -DESP8266 -Os @$OUT/core/build.opt \
 -D$SDK=1 -DF_CPU=80000000L -DLWIP_OPEN_SRC -DTCP_MSS=536 -DLWIP_FEATURES=1 -DLWIP_IPV6=0 \
 -DARDUINO=10607 -DARDUINO_ESP8266_NODEMCU_ESP12E -DARDUINO_ARCH_ESP8266 \
 -DARDUINO_BOARD=\"ESP8266_NODEMCU_ESP12E\" -DARDUINO_BOARD_ID=\"nodemcuv2\" -DLED_BUILTIN=2 -DFLASHMODE_DIO \
 ${ISOBOX_DEFS:-}"
INC="-isystem $CXXINC -isystem $CXXINC/$T ${EXTRA_INC:-} -isystem $LIBS/$T/include \
 -I$CORE/tools/sdk/include -I$CORE/tools/sdk/lwip2/include -I$OUT/core \
 -I$CORE/cores/esp8266 -I$CORE/variants/nodemcu \
 -I$CORE/libraries/ESP8266WiFi/src -I$CORE/libraries/ESP8266WebServer/src \
 -I$CORE/libraries/DNSServer/src -I$CORE/libraries/EEPROM -I$CORE/libraries/Hash/src -I$WS/src -I$FW/core -I$FW/arduino/isobox_relay"
# The Xtensa HAL headers (xtensa/coreasm.h, …) of the core's own toolchain, for its
# exception wrapper (.S) only, after newlib's so they shadow nothing.
SINC="-idirafter $HAL/include"
COMMON="-g -free -fipa-pta -Werror=return-type -mlongcalls -mtext-section-literals -falign-functions=4 \
 -MMD -ffunction-sections -fdata-sections -fno-exceptions $MMU"
CFLAGS="-std=gnu17 $COMMON -Wpointer-arith -Wno-implicit-function-declaration -fno-inline-functions -nostdlib -DFP_IN_IROM"
CXXFLAGS="-std=gnu++17 $COMMON -fno-rtti"
# TLS=1 (default): wss:// with eventrelay's key pinned: the library's TLS
# client replaced by the pinned one (arduino/websockets_pinned_tls.h).
# TLS=0: ws:// only, the library without its TLS client
# (arduino/websockets_no_tls.h), so of BearSSL only the SHA-1 of the
# handshake (the core's Hash library) is linked. libbearssl.a is an archive: only
# the members referenced are linked.
TLS=${TLS:-1}
case $TLS in
  0) WS_EXTRA="-include $FW/arduino/websockets_no_tls.h" ;;
  1) WS_EXTRA="-include $FW/arduino/websockets_pinned_tls.h"
     # Replays in frames a board can hold beside its TLS buffers (eventrelay's frameBytes=).
     case "${ISOBOX_DEFS:-}" in *ISOBOX_FW_FRAME_BYTES*) ;; *) DEFS="$DEFS -DISOBOX_FW_FRAME_BYTES=2048" ;; esac ;;
  *) echo "TLS must be 0 or 1" >&2; exit 2 ;;
esac
[ -f "$LIBS/lib/libbearssl.a" ] || { echo "needs $LIBS/lib/libbearssl.a (esp8266-libs.sh with BEARSSL_SRC)" >&2; exit 1; }
export T DEFS INC SINC CFLAGS CXXFLAGS OUT WS_EXTRA

# One list of "group source" lines; objects go to OUT/obj/group/…; a source
# is recompiled when it is newer than its object.
LIST=$OUT/sources.txt
: >"$LIST"
add() { g=$1; shift; find "$@" -maxdepth ${DEPTH:-9} \( -name '*.c' -o -name '*.cpp' -o -name '*.S' \) | sort | sed "s|^|$g |" >>"$LIST"; }
add core "$CORE/cores/esp8266"
add wifi "$CORE/libraries/ESP8266WiFi/src"
add web "$CORE/libraries/ESP8266WebServer/src"
add dns "$CORE/libraries/DNSServer/src"
add hash "$CORE/libraries/Hash/src"
DEPTH=1 add eeprom "$CORE/libraries/EEPROM"
add ws "$WS/src"
DEPTH=1 add isobox "$FW/core"
DEPTH=1 add sketch "$FW/arduino/isobox_relay"
echo "sketch $FW/arduino/isobox_relay/isobox_relay.ino" >>"$LIST"

# The firmware's own objects and the library's (which see its headers and
# the -include) are always rebuilt: a header change must not leave a stale one.
rm -rf "$OUT/obj/isobox" "$OUT/obj/sketch" "$OUT/obj/ws"
compile() {
  # The sketch's object is named .ino.cpp.o as the IDE names it: the core's
  # linker script sends *.cpp.o and *.c.o code to flash, the rest to IRAM.
  g=$1; src=$2; o=$OUT/obj/$g/$(basename "$src").o
  case $src in *.ino) o=$OUT/obj/$g/$(basename "$src").cpp.o ;; esac
  [ -f "$o" ] && [ "$o" -nt "$src" ] && return 0
  mkdir -p "$OUT/obj/$g"
  x=""; case $g in ws|sketch) x=$WS_EXTRA ;; esac
  case $src in
    *.c) set -- $T-gcc $DEFS $INC $CFLAGS ;;
    *.S) set -- $T-gcc $DEFS $INC $SINC -g -x assembler-with-cpp -MMD -mlongcalls ;;
    *.ino) set -- $T-g++ $DEFS $INC $CXXFLAGS $x -x c++ ;;
    *) set -- $T-g++ $DEFS $INC $CXXFLAGS $x ;;
  esac
  "$@" -c "$src" -o "$o" 2>"$o.log" || { echo "FAILED: $src" >&2; cat "$o.log" >&2; return 1; }
}
echo "compiling $(wc -l <"$LIST") sources"
# shellcheck disable=SC2016
xargs -P "$JOBS" -L 1 sh -c "$(sed -n '/^compile() {/,/^}/p' "$0")"'; compile "$@"' sh <"$LIST"

rm -f "$OUT/libcore.a"
$T-ar cru "$OUT/libcore.a" "$OUT"/obj/core/*.o
OBJS=$(ls "$OUT"/obj/*/*.o | grep -v "/obj/core/")

cp "$CORE/tools/sdk/ld/eagle.flash.4m2m.ld" "$OUT/local.eagle.flash.ld.h"
$T-gcc -CC -E -P -DVTABLES_IN_FLASH $MMU "$OUT/local.eagle.flash.ld.h" -o "$OUT/local.eagle.flash.ld"
$T-gcc -DFP_IN_IROM -CC -E -P -DVTABLES_IN_FLASH $MMU "$CORE/tools/sdk/ld/eagle.app.v6.common.ld.h" \
  -o "$OUT/local.eagle.app.v6.common.ld"

$T-gcc -fno-exceptions -Wl,-Map "-Wl,$OUT/isobox_relay.map" -g -nostdlib -Wl,--no-check-sections \
  -u app_entry -u _printf_float -u _scanf_float -Wl,-static \
  "-L$CORE/tools/sdk/lib" "-L$CORE/tools/sdk/lib/$SDK" "-L$OUT" $LIBDIRS \
  -Tlocal.eagle.flash.ld -Wl,--gc-sections -Wl,-wrap,system_restart_local -Wl,-wrap,spi_flash_read \
  -o "$OUT/isobox_relay.elf" -Wl,--start-group $OBJS "$OUT/libcore.a" \
  -lhal -lphy -lpp -lnet80211 -llwip2-536-feat -lwpa -lcrypto -lmain -lwps -lbearssl -lespnow -lsmartconfig \
  -lairkiss -lwpa2 -lstdc++ -lm -lc -lgcc -Wl,--end-group

python3 -I "$CORE/tools/elf2bin.py" --eboot "$CORE/bootloaders/eboot/eboot.elf" \
  --app "$OUT/isobox_relay.elf" --flash_mode dio --flash_freq 40 --flash_size 4M \
  --path /usr/bin --out "$OUT/isobox_relay.bin" >/dev/null

# Sizes: DRAM static = .data + .rodata + .bss (of the 80 KiB dram0 segment,
# the rest is heap and stack), IRAM = .text + .text1 (of the 32 KiB IRAM),
# flash = the .bin written at 0x0 (eboot + IRAM/DRAM image + .irom0.text).
sec() { $T-size -A "$OUT/isobox_relay.elf" | awk -v s="$1" '$1==s{print $2} END{}' | head -1; }
z() { v=$(sec "$1"); echo "${v:-0}"; }
DATA=$(z .data); RODATA=$(z .rodata); BSS=$(z .bss); TEXT=$(z .text); TEXT1=$(z .text1); IROM=$(z .irom0.text)
DRAM=$((DATA + RODATA + BSS)); IRAM=$((TEXT + TEXT1)); FLASH=$(stat -c %s "$OUT/isobox_relay.bin")
BR=$(python3 - "$OUT/isobox_relay.map" <<'PY'
import re, sys
# Bytes of libbearssl.a members placed in the image's output sections.
keep = {".irom0.text", ".text", ".text1", ".rodata", ".data", ".bss"}
total, out, pend = 0, None, False
for line in open(sys.argv[1]):
    if re.match(r"^\.\S", line):
        out = line.split()[0]; pend = False; continue
    if out not in keep: continue
    m = re.match(r"^ \.\S+\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+\S*libbearssl\.a\(", line)
    n = re.match(r"^\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+\S*libbearssl\.a\(", line)
    if m: total += int(m.group(1), 16)
    elif n and pend: total += int(n.group(1), 16)
    pend = bool(re.match(r"^ \.\S+\s*$", line))
print(total)
PY
)
{
  echo "isobox_relay for nodemcuv2 ($(xtensa-lx106-elf-gcc -dumpversion), core $(sed -n 's/^version=//p' "$CORE/platform.txt"))"
  printf '%-22s %8d B  budget %8d B  (.data %d + .rodata %d + .bss %d; heap gets the rest of 81920)\n' \
    "DRAM static" "$DRAM" "$DRAM_MAX" "$DATA" "$RODATA" "$BSS"
  printf '%-22s %8d B  budget %8d B  (.text %d + .text1 %d)\n' "IRAM" "$IRAM" "$IRAM_MAX" "$TEXT" "$TEXT1"
  printf '%-22s %8d B  budget %8d B  (.irom0.text %d)\n' "flash (.bin)" "$FLASH" "$FLASH_MAX" "$IROM"
  printf '%-22s %8d B  (TLS=%s: %s)\n' "BearSSL in flash" "$BR" "$TLS" \
    "$([ "$TLS" = 1 ] && echo "pinned-key TLS client" || echo "plain ws://, the handshake's SHA-1 only")"
} | tee "$OUT/size.txt"
# The heap one TLS connection takes (TLS=1), from BearSSL's struct sizes
# on this target (sizeof, xtensa-lx106 with the pinned bearssl-esp8266
# headers) and the core's buffer arithmetic (WiFiClientSecure::setBufferSizes
# adds 325 B in / 85 B out; StackThunk mallocs a 6,200 B stack for BearSSL):
#   in buffer 4,096+325 (eventrelay caps a frameBytes=2048 subscriber's
#   records at 2,058 B) + out 512+85 + br_ssl_client_context 3,408
#   + br_x509_knownkey_context 28 + stack thunk 6,200 + client objects,
#   parsed key and allocator overhead, allowed 700 = 15,354 B
# plus the WebSocket library's frame buffer (frameBytes=2048 + header):
# 2,100. What is left of the 81,920 B after static DRAM and these must stay
# above HEAP_SPARE_MIN (8 KiB) for the SDK's Wi-Fi/lwIP allocations, the web
# server and the stack of callbacks. After a record too large for 4 KiB (a
# server that is not isobox's relay) the board uses 16,384+325 until it
# restarts, 12,288 B more: that must stay above HEAP_FALLBACK_MIN (6 KiB,
# the minimum of the 16 KiB builds before). Under the core's host emulation
# (make emulate-test) a live connection holds 9,088 B of malloc'ed memory
# with 4 KiB and 20,880 B with 16 KiB (32-bit x86, no stack thunk); the real
# free heap needs a board.
if [ "$TLS" = 1 ]; then
  TLS_HEAP=$((4096 + 325 + 512 + 85 + 3408 + 28 + 6200 + 700)); FRAME_HEAP=2100
  SPARE=$((81920 - DRAM - TLS_HEAP - FRAME_HEAP)); HEAP_SPARE_MIN=${HEAP_SPARE_MIN:-8192}
  FALLBACK=$((SPARE - 12288)); HEAP_FALLBACK_MIN=${HEAP_FALLBACK_MIN:-6144}
  printf '%-22s %8d B  minimum  %8d B  (81920 - DRAM %d - TLS connection %d - frame %d)\n' \
    "heap left beside TLS" "$SPARE" "$HEAP_SPARE_MIN" "$DRAM" "$TLS_HEAP" "$FRAME_HEAP" | tee -a "$OUT/size.txt"
  printf '%-22s %8d B  minimum  %8d B  (after a record too large: 16 KiB receive buffer, +12288)\n' \
    "heap left, fallback" "$FALLBACK" "$HEAP_FALLBACK_MIN" | tee -a "$OUT/size.txt"
fi
fail=0
[ "$TLS" != 1 ] || [ "$SPARE" -ge "$HEAP_SPARE_MIN" ] || { echo "over budget: heap left beside a TLS connection $SPARE < $HEAP_SPARE_MIN" >&2; fail=1; }
[ "$TLS" != 1 ] || [ "$FALLBACK" -ge "$HEAP_FALLBACK_MIN" ] || { echo "over budget: heap left beside a TLS connection with the 16 KiB fallback buffer $FALLBACK < $HEAP_FALLBACK_MIN" >&2; fail=1; }
[ "$DRAM" -le "$DRAM_MAX" ] || { echo "over budget: DRAM static $DRAM > $DRAM_MAX" >&2; fail=1; }
[ "$IRAM" -le "$IRAM_MAX" ] || { echo "over budget: IRAM $IRAM > $IRAM_MAX" >&2; fail=1; }
[ "$FLASH" -le "$FLASH_MAX" ] || { echo "over budget: flash $FLASH > $FLASH_MAX" >&2; fail=1; }
[ $fail -eq 0 ] || exit 1
echo "bin: $OUT/isobox_relay.bin"
