#!/usr/bin/env bash
# Builds v4l2loopback.ko for the guest kernel of the VM tests from Debian's
# v4l2loopback-dkms source (`apt-get download`ed, unpacked with `dpkg -x`,
# nothing installed), against the kernel's build tree (kernel-headers.sh).
# Needs make and the compiler the kernel was built with (gcc-12 on
# bookworm). Prints the module's path:
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
tree=$(bash "$here/kernel-headers.sh")
exec 9>"$cache/.lock-v4l2loopback"
flock 9
[ -f "$out" ] && { echo "$out"; exit 0; }

debs=$cache/debs
(cd "$debs" && apt-get -q -o APT::Sandbox::User=root download v4l2loopback-dkms >&2)
rm -rf "$cache/v4l2loopback.tmp" "$cache/dkms.tmp"
dpkg -x "$debs"/v4l2loopback-dkms_*.deb "$cache/dkms.tmp"
mv "$cache"/dkms.tmp/usr/src/v4l2loopback-* "$cache/v4l2loopback.tmp"
rm -rf "$cache/dkms.tmp"
make -s -C "$tree" M="$cache/v4l2loopback.tmp" modules >&2
rm -rf "$cache/v4l2loopback"
mv "$cache/v4l2loopback.tmp" "$cache/v4l2loopback"
echo "$out"
