#!/usr/bin/env bash
# Builds the agent for the boards, checks it under qemu-user, and packages it.
#
#   bash cross/build.sh aarch64|armv7|aarch64-musl|all ...   (default: all)
#
#   aarch64       aarch64-unknown-linux-gnu        Pi 3/4/5, Rock, Jetson... (Debian arm64)
#   armv7         armv7-unknown-linux-gnueabihf    Pi 2, older SoCs (Debian armhf)
#   aarch64-musl  aarch64-unknown-linux-musl       static: any aarch64 Linux
#
# For each target: installs what it needs (Debian's cross g++ and qemu-user;
# for musl, zig from PyPI's `ziglang` and `cargo-zigbuild`), builds
# target/<triple>/board/streamswitch with the `board` profile (Cargo.toml),
# prints its size, runs the end-to-end smoke test under qemu-user
# (tests/tests/cross_smoke.rs: --version, then RTSP and HLS of the 320x240
# test source read by the host's ffprobe), and for the glibc targets makes
# the .deb (cargo-deb) in target/<triple>/debian/.
#
# Device back-ends: the glibc targets build with both (`v4l2`, `alsa`),
# linking the target's libasound from Debian multiarch (cross/multiarch.sh
# installs libasound2-dev:arm64/armhf); the static musl build has `v4l2`
# only (no musl libasound: `--no-default-features --features v4l2`). The
# cross environment (pkg-config, bindgen) is in cross/env.sh.
#
# PROFILE=dev (or release) builds another profile instead of `board`.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(all)
[ "${targets[*]}" = all ] && targets=(aarch64 armv7 aarch64-musl)
profile=${PROFILE:-board}
# Cargo's directory for the dev profile is `debug`.
profile_dir=$profile
[ "$profile" = dev ] && profile_dir=debug

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
apt_need=()
multiarch=()
for t in "${targets[@]}"; do
    case "$t" in
        aarch64) command -v aarch64-linux-gnu-g++ >/dev/null || apt_need+=(g++-aarch64-linux-gnu); multiarch+=(arm64) ;;
        armv7) command -v arm-linux-gnueabihf-g++ >/dev/null || apt_need+=(g++-arm-linux-gnueabihf); multiarch+=(armhf) ;;
        aarch64-musl) ;;
        *) echo "unknown target $t (aarch64, armv7, aarch64-musl or all)" >&2; exit 2 ;;
    esac
done
command -v qemu-aarch64 >/dev/null || apt_need+=(qemu-user)
command -v ffprobe >/dev/null || apt_need+=(ffmpeg)
command -v dpkg-deb >/dev/null || apt_need+=(dpkg-dev)
if [ ${#apt_need[@]} -gt 0 ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_need[@]}" >/dev/null
fi
[ ${#multiarch[@]} -eq 0 ] || bash cross/multiarch.sh "${multiarch[@]}"
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb --version 3.8.0
. cross/env.sh

for t in "${targets[@]}"; do
    case "$t" in
        aarch64) triple=aarch64-unknown-linux-gnu strip=aarch64-linux-gnu-strip ;;
        armv7) triple=armv7-unknown-linux-gnueabihf strip=arm-linux-gnueabihf-strip ;;
        aarch64-musl) triple=aarch64-unknown-linux-musl strip="" ;;
    esac
    rustup target add "$triple" >/dev/null
    build=(build)
    features=()
    if [ "$t" = aarch64-musl ]; then
        # musl has no Debian cross g++: zig is the C/C++ compiler (its own
        # musl and libc++, linked statically) and the linker.
        python3 -m ziglang version >/dev/null 2>&1 || pip3 install --quiet ziglang
        command -v cargo-zigbuild >/dev/null || cargo install --locked cargo-zigbuild
        build=(zigbuild)
        # The codecs' C++ links against zig's libc++, not libstdc++.
        export CXXSTDLIB_aarch64_unknown_linux_musl=c++
        # V4L2 needs no C library at run time; ALSA would need a static
        # musl libasound, which Debian does not have.
        features=(--no-default-features --features v4l2)
    fi
    cross_cargo "$triple" "${build[@]}" --profile "$profile" --target "$triple" \
        -p streamswitch-agent --bin streamswitch "${features[@]}"
    bin="target/$triple/$profile_dir/streamswitch"
    size=$(stat -c %s "$bin")
    if [ -n "$strip" ] && [ "$profile" != board ]; then
        "$strip" -o "$bin.stripped" "$bin"
        size="$size ($(stat -c %s "$bin.stripped") stripped)"
    fi
    echo "$bin: $size bytes"

    STREAMSWITCH_CROSS_TARGET=$triple STREAMSWITCH_CROSS_PROFILE=$profile_dir \
        cargo test -p streamswitch-tests --test cross_smoke -- --nocapture

    if [ "$t" != aarch64-musl ]; then
        deb=$(cargo deb --no-build --target "$triple" --profile "$profile" -p streamswitch-agent \
            -o "target/$triple/debian/" | tail -n 1)
        echo "$deb"
        # tests/tests/deb_package.rs checks it, with the host's agent
        # checking the packaged configuration (built as tests/run.sh builds it,
        # so the two share the build).
        cargo build --bins
        STREAMSWITCH_DEB=$deb cargo test -p streamswitch-tests --test deb_package
    fi
done
