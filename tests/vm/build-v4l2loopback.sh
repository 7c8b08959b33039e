#!/usr/bin/env bash
# Builds v4l2loopback.ko for the guest kernel of the VM tests from Debian's
# v4l2loopback-dkms source, against that kernel's linux-headers and
# linux-kbuild packages: all `apt-get download`ed and unpacked with
# `dpkg -x` into the cache, nothing installed. Needs make and the compiler
# the kernel was built with (gcc-12 on bookworm). Prints the module's path:
#   $CACHE/v4l2loopback/v4l2loopback.ko
# CACHE is ${STREAMSWITCH_VM_CACHE:-$HOME/.cache/streamswitch-vm}. Does
# nothing when the module is there.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${STREAMSWITCH_VM_CACHE:-$HOME/.cache/streamswitch-vm}
out=$cache/v4l2loopback/v4l2loopback.ko
if [ -f "$out" ]; then
    echo "$out"
    exit 0
fi
version=$(bash "$here/fetch-kernel.sh")
exec 9>"$cache/.lock-v4l2loopback"
flock 9
[ -f "$out" ] && { echo "$out"; exit 0; }

debs=$cache/debs
headers=$cache/headers
kbuild=linux-kbuild-$(echo "$version" | cut -d. -f1,2)
common=linux-headers-${version%-*}-common
if [ ! -d "$headers/usr/src/linux-headers-$version" ]; then
    (cd "$debs" && apt-get -q -o APT::Sandbox::User=root download \
        "linux-headers-$version" "$common" "$kbuild" v4l2loopback-dkms >&2)
    rm -rf "$headers.tmp"
    for p in "linux-headers-$version" "$common" "$kbuild" v4l2loopback-dkms; do
        dpkg -x "$debs/$p"_*.deb "$headers.tmp"
    done
    # The arch headers' Makefile includes the common ones by absolute path.
    sed -i "s|include /usr/src/|include $headers/usr/src/|" \
        "$headers.tmp/usr/src/linux-headers-$version/Makefile"
    mv "$headers.tmp" "$headers"
fi

rm -rf "$cache/v4l2loopback.tmp"
cp -a "$headers"/usr/src/v4l2loopback-* "$cache/v4l2loopback.tmp"
make -s -C "$headers/usr/src/linux-headers-$version" M="$cache/v4l2loopback.tmp" modules >&2
rm -rf "$cache/v4l2loopback"
mv "$cache/v4l2loopback.tmp" "$cache/v4l2loopback"
echo "$out"
