#!/usr/bin/env bash
# Builds the kernel's virtual codec `vicodec` (a V4L2 stateful mem2mem
# FWHT encoder and decoder, the m2m encoder's real peer in the VM tests)
# for the guest kernel. Debian builds neither vicodec
# (CONFIG_VIDEO_VICODEC is not set) nor, on amd64, the mem2mem framework
# it needs (CONFIG_V4L2_MEM2MEM_DEV): both are built out of tree from the
# kernel's own linux-source package (`apt-get download`ed, nothing
# installed) against its build tree (kernel-headers.sh). Two modules:
# both files define a `debug` parameter. Prints their paths, in load
# order (after videobuf2-vmalloc and videobuf2-v4l2):
#   $CACHE/vicodec/v4l2-mem2mem.ko
#   $CACHE/vicodec/vicodec.ko
# CACHE is ${STREAMSWITCH_VM_CACHE:-$HOME/.cache/streamswitch-vm}.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${STREAMSWITCH_VM_CACHE:-$HOME/.cache/streamswitch-vm}
out=$cache/vicodec
if [ ! -f "$out/vicodec.ko" ]; then
    tree=$(bash "$here/kernel-headers.sh")
    exec 9>"$cache/.lock-vicodec"
    flock 9
    if [ ! -f "$out/vicodec.ko" ]; then
        debs=$cache/debs
        version=$(basename "$tree" | sed 's/^linux-headers-//')
        # The source of the image's own version (6.1.0-57-amd64 is 6.1.192-3).
        srcver=$(dpkg-deb -f "$(ls "$debs"/linux-image-"$version"_*.deb | head -1)" Version)
        minor=$(echo "$version" | cut -d. -f1,2)
        src=$(ls "$debs"/linux-source-"$minor"_"$srcver"_all.deb 2>/dev/null || true)
        if [ -z "$src" ]; then
            (cd "$debs" && apt-get -q -o APT::Sandbox::User=root download \
                "linux-source-$minor=$srcver" >&2)
            src=$(ls "$debs"/linux-source-"$minor"_"$srcver"_all.deb)
        fi
        rm -rf "$out.tmp" && mkdir -p "$out.tmp"
        dpkg-deb --fsys-tarfile "$src" |
            tar -xO --wildcards './usr/src/linux-source-*.tar.xz' | xz -dc |
            tar -x -C "$out.tmp" --strip-components=1 --wildcards \
                '*/drivers/media/test-drivers/vicodec/*' '*/drivers/media/v4l2-core/v4l2-mem2mem.c'
        mv "$out.tmp"/drivers/media/test-drivers/vicodec/* \
            "$out.tmp"/drivers/media/v4l2-core/v4l2-mem2mem.c "$out.tmp"/
        rm -rf "$out.tmp/drivers"
        printf 'vicodec-objs := vicodec-core.o codec-fwht.o codec-v4l2-fwht.o\nobj-m += vicodec.o v4l2-mem2mem.o\n' \
            > "$out.tmp/Makefile"
        make -s -C "$tree" M="$out.tmp" modules >&2
        rm -rf "$out"
        mv "$out.tmp" "$out"
    fi
fi
echo "$out/v4l2-mem2mem.ko"
echo "$out/vicodec.ko"
