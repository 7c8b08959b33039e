#!/bin/sh
# Cargo's runner for the ARM targets (.cargo/config.toml): runs an ARM
# binary under qemu-user. Usage: cross/qemu.sh aarch64|arm BINARY [ARGS...]
#
# glibc binaries need the ARM dynamic loader and libraries. Debian's cross
# toolchain puts them in /usr/<triple>/; `-L` makes qemu look there. But with
# the multiarch libc (libc6:arm64) installed, `-L /usr/aarch64-linux-gnu`
# has been seen to hang: then the loader is in /lib already, so run without
# `-L` and point only the library path at the cross sysroot. Static (musl)
# binaries need neither and run either way.
set -eu
arch=$1
shift
case "$arch" in
    aarch64) sysroot=/usr/aarch64-linux-gnu loader=/lib/ld-linux-aarch64.so.1 ;;
    arm) sysroot=/usr/arm-linux-gnueabihf loader=/lib/ld-linux-armhf.so.3 ;;
    *) echo "qemu.sh: unknown arch $arch (aarch64 or arm)" >&2; exit 2 ;;
esac
if [ -e "$loader" ]; then
    exec "qemu-$arch" -E "LD_LIBRARY_PATH=$sysroot/lib" "$@"
fi
exec "qemu-$arch" -L "$sysroot" "$@"
