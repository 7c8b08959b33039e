#!/usr/bin/env bash
# Fetches the guest of the VM tests: Debian's kernel (the package that
# linux-image-amd64 depends on) and busybox-static, with `apt-get download`
# (nothing is installed), unpacked with `dpkg -x` into the cache:
#   $CACHE/kernel/boot/vmlinuz-<ver>, $CACHE/kernel/lib/modules/<ver> (depmod'ed)
#   $CACHE/kernel/boot/vmlinux-<ver>: the image uncompressed, which qemu
#     boots directly (PVH): decompressing under emulation took 5 s of a boot
#   $CACHE/busybox/bin/busybox
# CACHE is ${STREAMSWITCH_VM_CACHE:-$HOME/.cache/streamswitch-vm}. Does
# nothing when both are there. Prints the kernel version.
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin  # depmod

cache=${STREAMSWITCH_VM_CACHE:-$HOME/.cache/streamswitch-vm}
debs=$cache/debs
mkdir -p "$debs"
# Test binaries running at the same time fetch once.
exec 9>"$cache/.lock-fetch"
flock 9

# apt-get download as root drops to the _apt user, which cannot write here.
apt_download() { (cd "$debs" && apt-get -q -o APT::Sandbox::User=root download "$@" >&2); }

if [ ! -d "$cache/kernel/boot" ]; then
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    [ -n "$pkg" ] || { echo "fetch-kernel: apt-cache knows no linux-image-amd64 (apt-get update?)" >&2; exit 1; }
    echo "fetch-kernel: $pkg" >&2
    apt_download "$pkg"
    rm -rf "$cache/kernel.tmp"
    dpkg -x "$debs/${pkg}"_*.deb "$cache/kernel.tmp"
    depmod -b "$cache/kernel.tmp" "$(ls "$cache/kernel.tmp/lib/modules")"
    mv "$cache/kernel.tmp" "$cache/kernel"
fi

version=$(ls "$cache/kernel/lib/modules")
vmlinux=$cache/kernel/boot/vmlinux-$version
if [ ! -f "$vmlinux" ]; then
    vmlinuz=$cache/kernel/boot/vmlinuz-$version
    # The bzImage holds the kernel as one xz stream after its set-up code.
    offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1)
    [ -n "$offset" ] || { echo "fetch-kernel: no xz stream in $vmlinuz" >&2; exit 1; }
    tail -c +$((offset + 1)) "$vmlinuz" > "$vmlinux.xz"
    xz -dc --single-stream "$vmlinux.xz" > "$vmlinux.tmp"
    rm "$vmlinux.xz"
    mv "$vmlinux.tmp" "$vmlinux"
fi

if [ ! -x "$cache/busybox/bin/busybox" ]; then
    apt_download busybox-static
    rm -rf "$cache/busybox.tmp"
    dpkg -x "$debs"/busybox-static_*.deb "$cache/busybox.tmp"
    mv "$cache/busybox.tmp" "$cache/busybox"
fi

echo "$version"
