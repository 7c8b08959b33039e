#!/usr/bin/env bash
# Installs what the build and the tests need: ffmpeg/ffprobe (the
# independent RTSP, HLS and MP4 checker), nasm (openh264's assembly, ~3x
# faster encoding), a C++ compiler (FDK AAC), Chromium, Node.js and npm (the
# web UI's browser tests, whose npm packages are pinned in
# tests/browser/package-lock.json), Mosquitto and its clients (the MQTT
# tests start their own brokers; the packaged service is not used),
# openssl (test certificates), nginx with its RTMP module (the RTMP uplink
# tests start their own; the packaged service is not used); for the board
# checks (docs/boards.md) the aarch64 cross toolchain and qemu-user (the
# aarch64 unit and smoke tests), systemd (`systemd-analyze verify` on the
# unit), dpkg-dev and cargo-deb (the .deb), and Rust's aarch64 standard
# library; for the VM tests (tests/vm/README.md) qemu (x86_64, with its
# qboot firmware), cpio, kmod (modprobe, depmod), xz and e2fsprogs (the
# power-cut test's disk image); make and gcc build v4l2loopback for the
# guest. The device back-ends: libclang (v4l2r's bindgen), ALSA's headers
# and pkg-config (alsa-sys), and for the aarch64 build libasound2-dev:arm64
# (cross/multiarch.sh); alsa-utils' aplay plays the tone into the VM's
# loopback sound card. mold links the test binaries (tests/run.sh). Skips
# what is there already.
set -euo pipefail

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v nasm >/dev/null || need+=(nasm)
command -v g++ >/dev/null || need+=(g++)
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v mosquitto >/dev/null || need+=(mosquitto)
command -v mosquitto_sub >/dev/null || need+=(mosquitto-clients)
command -v openssl >/dev/null || need+=(openssl)
command -v nginx >/dev/null || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v dpkg-deb >/dev/null || need+=(dpkg-dev)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
[ -x /usr/sbin/modprobe ] || [ -x /sbin/modprobe ] || need+=(kmod)
command -v xz >/dev/null || need+=(xz-utils)
[ -x /usr/sbin/debugfs ] || [ -x /sbin/debugfs ] || need+=(e2fsprogs)
command -v make >/dev/null || need+=(make)
[ -n "$(find /usr/lib -name 'libclang*.so*' -print -quit 2>/dev/null)" ] || need+=(libclang-dev)
[ -e /usr/include/alsa/asoundlib.h ] || need+=(libasound2-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v aplay >/dev/null || need+=(alsa-utils)
command -v mold >/dev/null || need+=(mold)

if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The browser tests' packages (playwright-core drives Debian's chromium; it
# never downloads a browser of its own).
browser="$(dirname "$0")/browser"
if [ ! -d "$browser/node_modules" ]; then
    echo "setup: npm ci in tests/browser"
    (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The aarch64 board build links the target's libasound (Debian multiarch).
bash "$(dirname "$0")/../cross/multiarch.sh" arm64

rustup target list --installed | grep -qx aarch64-unknown-linux-gnu ||
    rustup target add aarch64-unknown-linux-gnu
# Pinned: cargo-deb warns that it will stop packaging some profiles.
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb --version 3.8.0
