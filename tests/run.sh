#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what the tests
# need (once), checks formatting and lints, builds the agent, runs every
# test. `.ci/run` runs this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh

export CARGO_TERM_COLOR=never
cargo fmt --check
cargo clippy --all-targets -- -D warnings
# The end-to-end tests spawn the built binary.
cargo build --bins
cargo test --no-fail-fast -- --test-threads="${TEST_THREADS:-2}"
