#!/bin/sh
# Cargo's runner for the ARM targets (.cargo/config.toml): runs an ARM
# binary under qemu-user. Usage: cross/qemu.sh aarch64|arm BINARY [ARGS...]
#
# glibc binaries need the ARM dynamic loader and libraries: the C/C++
# runtime from Debian's cross toolchain in /usr/<triple>/lib, and libasound
# (the `alsa` back-end) from Debian multiarch in /usr/lib/<triple>
# (cross/multiarch.sh). With the multiarch libc (libc6:arm64/armhf, which
# libasound2 brings) installed, the loader is in /lib already and
# `-L /usr/aarch64-linux-gnu` has been seen to hang: run without `-L`, the
# multiarch directories first (libc from the same build as that loader),
# then the cross sysroot (libstdc++, libgcc_s). Without the multiarch libc,
# `-L` the cross sysroot (qemu falls back to host paths for what is not
# in it, so /usr/lib/<triple> is still seen). Static (musl) binaries need
# neither and run either way.
set -eu
arch=$1
shift
case "$arch" in
    aarch64) gnu=aarch64-linux-gnu loader=/lib/ld-linux-aarch64.so.1 ;;
    arm) gnu=arm-linux-gnueabihf loader=/lib/ld-linux-armhf.so.3 ;;
    *) echo "qemu.sh: unknown arch $arch (aarch64 or arm)" >&2; exit 2 ;;
esac
sysroot=/usr/$gnu
if [ -e "$loader" ]; then
    exec "qemu-$arch" -E "LD_LIBRARY_PATH=/lib/$gnu:/usr/lib/$gnu:$sysroot/lib" "$@"
fi
exec "qemu-$arch" -L "$sysroot" -E "LD_LIBRARY_PATH=/usr/lib/$gnu" "$@"
