# The cross-compilation environment of the board builds, in one place.
# Sourced (`. cross/env.sh`) by cross/build.sh and tests/run.sh. The
# exported variables are per target (cargo's triple with `_`), so host
# builds in the same shell see none of them and keep their build cache.
#
# For each glibc target (cargo triple, Debian multiarch name):
#
# - alsa-sys links libasound through pkg-config: it reads the target's
#   alsa.pc from Debian multiarch (cross/multiarch.sh installs
#   libasound2-dev:arm64/armhf). That says -L/usr/lib/<gnu> -lasound, where
#   the cross linker then finds the target's libasound.so. No
#   PKG_CONFIG_SYSROOT_DIR: multiarch paths are real host paths.
# - v4l2r's bindgen: bindgen itself gives libclang --target=<cargo's
#   TARGET> (armv7: 32-bit ARM layouts); the sysroot makes clang read the
#   cross toolchain's headers in /usr/<gnu>/include (linux/videodev2.h,
#   asm/, the target glibc's sys/time.h). v4l2r's `arch32`/`arch64`
#   features are NOT for this: they force `--target=i686-linux-gnu` /
#   `x86_64-linux-gnu` (x86 layouts: 8-byte integers 4-aligned on i686).
#
# aarch64-musl: cargo-zigbuild hands zig's musl and Linux headers to bindgen
# itself (BINDGEN_EXTRA_CLANG_ARGS_<target>); no ALSA (no musl libasound
# in Debian), so that build is `--no-default-features --features v4l2`.

for cross_pair in aarch64-unknown-linux-gnu:aarch64-linux-gnu armv7-unknown-linux-gnueabihf:arm-linux-gnueabihf; do
    cross_var=$(echo "${cross_pair%%:*}" | tr - _)
    cross_gnu=${cross_pair#*:}
    export "PKG_CONFIG_ALLOW_CROSS_$cross_var=1"
    export "PKG_CONFIG_LIBDIR_$cross_var=/usr/lib/$cross_gnu/pkgconfig:/usr/share/pkgconfig"
    export "BINDGEN_EXTRA_CLANG_ARGS_$cross_var=--sysroot=/usr/$cross_gnu"
done
unset cross_pair cross_var cross_gnu

# cross_cargo TRIPLE ARGS...: `cargo ARGS...` for a board target. v4l2r's
# V4L2R_VIDEODEV2_H_PATH (the directory of videodev2.h, given to clang as
# -I; /usr/include/linux, the host's, when unset) is not per target, so it
# is set on the board's cargo command only, not exported: a host build
# seeing it would re-run v4l2r's build script.
cross_cargo() {
    cross_triple=$1
    shift
    case "$cross_triple" in
        aarch64-unknown-linux-gnu) V4L2R_VIDEODEV2_H_PATH=/usr/aarch64-linux-gnu/include/linux cargo "$@" ;;
        armv7-unknown-linux-gnueabihf) V4L2R_VIDEODEV2_H_PATH=/usr/arm-linux-gnueabihf/include/linux cargo "$@" ;;
        *) cargo "$@" ;;
    esac
}
