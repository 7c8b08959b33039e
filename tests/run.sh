#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what the tests
# need (once), checks formatting and lints, builds the agent, runs every
# test. `.ci/run` runs this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh

export CARGO_TERM_COLOR=never
# A one-off build from scratch: incremental compilation only adds work, and
# mold links the ~45 test binaries several times faster than ld.bfd.
export CARGO_INCREMENTAL=0
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-fuse-ld=mold"
cargo fmt --check
cargo clippy --all-targets -- -D warnings
# The end-to-end tests spawn the built binary. Built with the tests in one
# go: `cargo build --bins` alone leaves out the dev-dependencies' features
# (tokio's test-util), so `cargo test` would build tokio and all above it
# again.
cargo build --bins --tests
# Boards (docs/boards.md): the unit tests on aarch64 under qemu-user, and
# the aarch64 agent and its .deb for tests/tests/cross_smoke.rs and
# deb_package.rs. The ci-arm profile (dev-like, Rust dependencies
# unoptimised, the codecs optimised): CI checks that the agent works on the
# architecture and that the package is right, not how small or fast it is
# (the board profile's fat LTO would add minutes); armv7 and musl run from
# `bash cross/build.sh`.
# With both device back-ends: cross/env.sh points alsa-sys's pkg-config and
# v4l2r's bindgen at the aarch64 libraries and headers.
. cross/env.sh
arm=aarch64-unknown-linux-gnu
cross_cargo $arm build --profile ci-arm --target $arm -p streamswitch-agent -p streamswitch-hal --bins --tests
cross_cargo $arm test --profile ci-arm --target $arm -p streamswitch-agent -p streamswitch-hal
cargo deb --no-build --fast --target $arm --profile ci-arm -p streamswitch-agent -o target/$arm/debian/
cargo test --no-fail-fast -- --test-threads="${TEST_THREADS:-2}"
