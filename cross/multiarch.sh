#!/usr/bin/env bash
# Installs the board's own ALSA library and headers through Debian
# multiarch (alsa-sys links libasound: the glibc board builds need the
# target's libasound.so, the unit tests under qemu-user its libasound.so.2).
#
#   bash cross/multiarch.sh arm64|armhf ...
#
# Adds the foreign architecture and installs libasound2-dev:<arch> (which
# brings libasound2:<arch> and libc6:<arch>) only when missing. cross/env.sh
# points pkg-config and the qemu runner at /usr/lib/<multiarch triple>.
set -euo pipefail

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
need=()
for arch in "$@"; do
    case "$arch" in
        arm64) gnu=aarch64-linux-gnu ;;
        armhf) gnu=arm-linux-gnueabihf ;;
        *) echo "multiarch.sh: unknown architecture $arch (arm64 or armhf)" >&2; exit 2 ;;
    esac
    [ -e "/usr/lib/$gnu/pkgconfig/alsa.pc" ] && continue
    dpkg --print-foreign-architectures | grep -qx "$arch" || $sudo dpkg --add-architecture "$arch"
    need+=("libasound2-dev:$arch")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "multiarch: installing ${need[*]}"
    # A failed index (a mirror mid-sync) is ignored by apt: go on to the install.
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
