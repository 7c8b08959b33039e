#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what the tests
# need (once), builds the agent, runs every test. `.ci/run` runs this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh

export CARGO_TERM_COLOR=never
cargo build --bins
cargo test --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-2}"
