#!/bin/sh
# Builds the target libraries the ESP8266 Arduino core links against but does
# not carry in its git repository (they come with its binary toolchain
# download), for Debian's gcc-xtensa-lx106 12.2:
#   newlib  (libc.a, libm.a + headers) from the core's fork, earlephilhower/newlib-xtensa
#   libstdc++.a + headers, -fno-exceptions, from Debian's gcc-12-source
#   libbearssl.a from earlephilhower/bearssl-esp8266 (the TLS client; the plain
#                build links only its SHA-1)
# into OUT (outside the repository), niced: the build machine is shared.
#
#   firmware/scripts/esp8266-libs.sh OUT NEWLIB_SRC BEARSSL_SRC
#
# OUT afterwards holds xtensa-lx106-elf/{include,lib} (newlib + libstdc++) and
# lib/libbearssl.a; `make -C firmware esp8266 ESP8266_LIBS=OUT` uses it. Steps
# already done (their stamp file exists) are skipped. GCC_SRC_TAR defaults to
# /usr/src/gcc-12/gcc-12.2.0-dfsg.tar.xz (apt-get install gcc-12-source).
set -eu
[ $# -ge 2 ] || { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
NEWLIB_SRC=$(cd "$2" && pwd)
BEARSSL_SRC=${3:-}
GCC_SRC_TAR=${GCC_SRC_TAR:-/usr/src/gcc-12/gcc-12.2.0-dfsg.tar.xz}
JOBS=${JOBS:-2}
TARGET=xtensa-lx106-elf
NICE="nice -n 19"
command -v $TARGET-gcc >/dev/null || { echo "needs $TARGET-gcc: apt-get install gcc-xtensa-lx106 binutils-xtensa-lx106" >&2; exit 1; }
[ -f "$NEWLIB_SRC/newlib/configure" ] || { echo "$NEWLIB_SRC is not a newlib source tree (earlephilhower/newlib-xtensa)" >&2; exit 1; }
SYS=$OUT/$TARGET
# The flags of the core's own toolchain build: code in flash-friendly sections,
# long calls (flash is far from IRAM), and the core supplies malloc, abort and
# signal. Warnings of 2021 sources under GCC 12 are not ours to fix.
TFLAGS="-Os -g -mlongcalls -mtext-section-literals -ffunction-sections -fdata-sections -free -fipa-pta -w"

if [ ! -f "$OUT/.newlib-done" ]; then
  echo "== newlib: $NEWLIB_SRC -> $SYS"
  rm -rf "$OUT/build-newlib" && mkdir -p "$OUT/build-newlib" && cd "$OUT/build-newlib"
  CFLAGS_FOR_TARGET="$TFLAGS -DSIGNAL_PROVIDED -DABORT_PROVIDED -DMALLOC_PROVIDED" \
  $NICE "$NEWLIB_SRC/configure" --target=$TARGET --prefix="$OUT" \
    --with-newlib --disable-multilib --disable-shared --disable-nls \
    --disable-newlib-io-c99-formats --disable-newlib-supplied-syscalls \
    --enable-newlib-nano-formatted-io --enable-newlib-reent-small \
    --enable-target-optspace --disable-option-checking >configure.log 2>&1
  $NICE make -j"$JOBS" all-target-newlib >make.log 2>&1 || { tail -30 make.log >&2; exit 1; }
  $NICE make install-target-newlib >install.log 2>&1 || { tail -30 install.log >&2; exit 1; }
  touch "$OUT/.newlib-done"
fi

if [ ! -f "$OUT/.libstdcxx-done" ]; then
  [ -f "$GCC_SRC_TAR" ] || { echo "needs $GCC_SRC_TAR: apt-get install gcc-12-source" >&2; exit 1; }
  echo "== libstdc++: $GCC_SRC_TAR -> $SYS"
  if [ ! -d "$OUT/gcc-src/libstdc++-v3" ]; then
    rm -rf "$OUT/gcc-src" && mkdir -p "$OUT/gcc-src"
    $NICE tar -xJf "$GCC_SRC_TAR" -C "$OUT/gcc-src" --strip-components=1 \
      --wildcards '*/libstdc++-v3' '*/libiberty' '*/include' '*/config' '*/libgcc' \
      '*/config.guess' '*/config.sub' '*/config-ml.in' '*/install-sh' '*/ltmain.sh' \
      '*/missing' '*/mkinstalldirs' '*/move-if-change' '*/symlink-tree' '*/compile' '*/depcomp' \
      '*/ltgcc.m4' '*/libtool.m4' '*/ltoptions.m4' '*/ltsugar.m4' '*/ltversion.m4' '*/lt~obsolete.m4' \
      '*/config.rpath' '*/gcc/BASE-VER' '*/gcc/DATESTAMP' '*/gcc/DEV-PHASE'
  fi
  rm -rf "$OUT/build-libstdcxx" && mkdir -p "$OUT/build-libstdcxx" && cd "$OUT/build-libstdcxx"
  # Standalone cross configure of libstdc++-v3 against the newlib above.
  CC="$TARGET-gcc -isystem $SYS/include" CXX="$TARGET-g++ -isystem $SYS/include" \
  CFLAGS="$TFLAGS" CXXFLAGS="$TFLAGS -fno-exceptions" LDFLAGS="-L$SYS/lib" \
  AR=$TARGET-ar RANLIB=$TARGET-ranlib NM=$TARGET-nm \
  $NICE "$OUT/gcc-src/libstdc++-v3/configure" --host=$TARGET --target=$TARGET \
    --prefix="$OUT" --with-cross-host=x86_64-linux-gnu --with-target-subdir=$TARGET --with-newlib \
    --disable-shared --disable-multilib --disable-nls --disable-libstdcxx-pch \
    --disable-libstdcxx-verbose --disable-libstdcxx-filesystem-ts --disable-libstdcxx-backtrace \
    --enable-libstdcxx-allocator=new --disable-wchar_t --disable-threads \
    --enable-cxx-flags="-fno-exceptions" >configure.log 2>&1 || { tail -30 config.log >&2; exit 1; }
  $NICE make -j"$JOBS" >make.log 2>&1 || { tail -30 make.log >&2; exit 1; }
  $NICE make install >install.log 2>&1 || { tail -30 install.log >&2; exit 1; }
  touch "$OUT/.libstdcxx-done"
fi

if [ -n "$BEARSSL_SRC" ] && [ ! -f "$OUT/.bearssl-done" ]; then
  BEARSSL_SRC=$(cd "$BEARSSL_SRC" && pwd)
  echo "== bearssl: $BEARSSL_SRC -> $OUT/lib/libbearssl.a"
  rm -rf "$OUT/build-bearssl" && cp -a "$BEARSSL_SRC" "$OUT/build-bearssl" && cd "$OUT/build-bearssl"
  # GCC 12 has no -mextra-l32r-costs (a patch of the core's own GCC).
  # Its headers use newlib's (string.h, pgmspace).
  sed -i -e 's/-mextra-l32r-costs=[0-9]*//' -e "s|^CFLAGS += -D__ets__|CFLAGS += -isystem $SYS/include -D__ets__|" conf/esp8266.mk
  $NICE make -j"$JOBS" CONF=esp8266 >make.log 2>&1 || { tail -30 make.log >&2; exit 1; }
  mkdir -p "$OUT/lib" && cp esp8266/libbearssl.a "$OUT/lib/"
  touch "$OUT/.bearssl-done"
fi
echo "done: $OUT"
