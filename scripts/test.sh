#!/usr/bin/env bash
# Runs every test in the workspace. Set TEST_DATABASE_URL=postgres://… to run
# the storage and end-to-end tests on PostgreSQL as well as SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== tests"
cargo test --workspace
