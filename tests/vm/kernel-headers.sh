#!/usr/bin/env bash
# Unpacks the guest kernel's build tree for out-of-tree modules: its
# linux-headers (arch and common) and linux-kbuild packages, `apt-get
# download`ed and unpacked with `dpkg -x` into the cache, nothing
# installed. Prints the tree's path:
#   $CACHE/headers/usr/src/linux-headers-<version>
# CACHE is ${STREAMSWITCH_VM_CACHE:-$HOME/.cache/streamswitch-vm}.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${STREAMSWITCH_VM_CACHE:-$HOME/.cache/streamswitch-vm}
version=$(bash "$here/fetch-kernel.sh")
debs=$cache/debs
headers=$cache/headers
tree=$headers/usr/src/linux-headers-$version
exec 8>"$cache/.lock-headers"
flock 8
if [ ! -d "$tree" ]; then
    kbuild=linux-kbuild-$(echo "$version" | cut -d. -f1,2)
    common=linux-headers-${version%-*}-common
    (cd "$debs" && apt-get -q -o APT::Sandbox::User=root download \
        "linux-headers-$version" "$common" "$kbuild" >&2)
    rm -rf "$headers.tmp"
    for p in "linux-headers-$version" "$common" "$kbuild"; do
        dpkg -x "$debs/$p"_*.deb "$headers.tmp"
    done
    # The arch headers' Makefile includes the common ones by absolute path.
    sed -i "s|include /usr/src/|include $headers/usr/src/|" \
        "$headers.tmp/usr/src/linux-headers-$version/Makefile"
    rm -rf "$headers"
    mv "$headers.tmp" "$headers"
fi
echo "$tree"
