#!/usr/bin/env bash
# Installs what the build and the tests need: ffmpeg/ffprobe (the
# independent RTSP, HLS and MP4 checker), nasm (openh264's assembly, ~3x
# faster encoding), a C++ compiler (FDK AAC). Skips apt when all is there.
set -euo pipefail

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v nasm >/dev/null || need+=(nasm)
command -v g++ >/dev/null || need+=(g++)

if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
