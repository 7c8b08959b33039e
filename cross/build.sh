#!/usr/bin/env bash
# Builds release binaries for the boards: aarch64 (Raspberry Pi 3/4/5, Rock,
# Jetson...) and armv7 hard-float (Pi 2, older SoCs), into
# target/<triple>/release/streamswitch, then checks each one starts under
# qemu-user (`streamswitch --version`).
# Usage: cross/build.sh [aarch64|armv7]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(aarch64 armv7)

need=()
for t in "${targets[@]}"; do
    case "$t" in
        aarch64) command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
                 command -v qemu-aarch64 >/dev/null || need+=(qemu-user) ;;
        armv7)   command -v arm-linux-gnueabihf-g++ >/dev/null || need+=(g++-arm-linux-gnueabihf)
                 command -v qemu-arm >/dev/null || need+=(qemu-user) ;;
        *) echo "unknown target $t (aarch64 or armv7)" >&2; exit 2 ;;
    esac
done
if [ ${#need[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

for t in "${targets[@]}"; do
    case "$t" in
        aarch64) triple=aarch64-unknown-linux-gnu ;;
        armv7) triple=armv7-unknown-linux-gnueabihf ;;
    esac
    rustup target add "$triple" >/dev/null
    cargo build --release --target "$triple" -p streamswitch-agent --bin streamswitch
    bin="target/$triple/release/streamswitch"
    cargo run --release --target "$triple" -p streamswitch-agent --bin streamswitch -- --version
    echo "$bin: $(stat -c %s "$bin") bytes"
done
