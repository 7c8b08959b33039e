#!/usr/bin/env bash
# Installs what the tests talk to: ffmpeg/ffprobe (independent RTSP, HLS and
# MP4 checker), nasm (openh264's assembly), cmake and libclang (libxaac's
# build), Chromium, Node.js and npm (the web UI's browser tests, whose npm
# packages are pinned in tests/browser/package-lock.json). Skips apt when
# everything is there already.
set -euo pipefail

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v nasm >/dev/null || need+=(nasm)
command -v cmake >/dev/null || need+=(cmake)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
[ -e /usr/lib/llvm-14/lib/libclang.so ] || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)

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
