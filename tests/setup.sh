#!/usr/bin/env bash
# Installs what the build and the tests need: ffmpeg/ffprobe (the
# independent RTSP, HLS and MP4 checker), nasm (openh264's assembly, ~3x
# faster encoding), a C++ compiler (FDK AAC), Chromium, Node.js and npm (the
# web UI's browser tests, whose npm packages are pinned in
# tests/browser/package-lock.json), Mosquitto and its clients (the MQTT
# tests start their own brokers; the packaged service is not used) and
# openssl (test certificates), nginx with its RTMP module (the RTMP uplink
# tests start their own; the packaged service is not used). Skips apt when
# all is there.
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
