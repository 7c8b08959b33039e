#!/bin/bash
# build-vicodec.sh: builds the kernel's virtual codec `vicodec` (a V4L2
# stateful mem2mem FWHT encoder and decoder) for the Debian bookworm guest
# kernel of the reference VM runner, which the m2m encoder's tests use.
#
# Debian builds neither vicodec (CONFIG_VIDEO_VICODEC is not set) nor, on
# amd64, the mem2mem framework it needs (CONFIG_V4L2_MEM2MEM_DEV): both are
# built here out of tree from the matching linux-source package.
#
# Expects the guest kernel unpacked under $HIL_ROOT/kernel-amd64 (as the
# runner's fetch-kernel.sh does). Needs gcc-12 and make. Nothing is
# installed: packages are apt-get download'ed and dpkg -x'ed.
# Output: $HIL_ROOT/vicodec/{v4l2-mem2mem,vicodec}.ko; load in that order,
# after videobuf2-vmalloc and videobuf2-v4l2 (vicodec's option
# multiplanar=1 switches it to the multi-planar API).
set -euo pipefail
HIL_ROOT=${HIL_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/streamswitch-hil}
KVER=$(ls "$HIL_ROOT/kernel-amd64/lib/modules" | head -1)
H=$HIL_ROOT/hdr-amd64
D=$HIL_ROOT/debs/amd64
OUT=$HIL_ROOT/vicodec
MM=$(echo "$KVER" | cut -d. -f1,2)
mkdir -p "$H" "$D"
# linux-source of the guest kernel's version (6.1.0-57-amd64 is 6.1.192-3)
SRCVER=$(dpkg-deb -f "$(ls "$D"/linux-image-"$KVER"_*.deb | head -1)" Version)
if [ ! -d "$H/usr/src/linux-headers-$KVER" ]; then
    (cd "$D" && apt-get -o APT::Sandbox::User=root download "linux-headers-$KVER" \
        "linux-headers-${KVER%-*}-common" "linux-kbuild-$MM")
    for p in "linux-headers-$KVER" "linux-headers-${KVER%-*}-common" linux-kbuild-; do
        dpkg -x "$(ls "$D/$p"*_*.deb | head -1)" "$H"
    done
    # the arch headers Makefile includes the -common one by absolute path
    sed -i "s|include /usr/src/|include $H/usr/src/|" "$H/usr/src/linux-headers-$KVER/Makefile"
fi
if [ ! -e "$D/linux-source.done-$SRCVER" ]; then
    (cd "$D" && apt-get -o APT::Sandbox::User=root download "linux-source-$MM=$SRCVER")
    touch "$D/linux-source.done-$SRCVER"
fi
rm -rf "$OUT" && mkdir -p "$OUT"
dpkg-deb --fsys-tarfile "$(ls "$D"/linux-source-*_"$SRCVER"_all.deb | head -1)" |
    tar -xO --wildcards './usr/src/linux-source-*.tar.xz' | xz -dc |
    tar -x -C "$OUT" --strip-components=1 --wildcards \
        '*/drivers/media/test-drivers/vicodec/*' '*/drivers/media/v4l2-core/v4l2-mem2mem.c'
mv "$OUT"/drivers/media/test-drivers/vicodec/* "$OUT"/drivers/media/v4l2-core/v4l2-mem2mem.c "$OUT"/
rm -rf "$OUT/drivers"
# Two modules: both files define a `debug` parameter.
printf 'vicodec-objs := vicodec-core.o codec-fwht.o codec-v4l2-fwht.o\nobj-m += vicodec.o v4l2-mem2mem.o\n' > "$OUT/Makefile"
make -C "$H/usr/src/linux-headers-$KVER" M="$OUT" modules
ls -l "$OUT"/*.ko
