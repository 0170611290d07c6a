#!/usr/bin/env bash
# Runs every test in the workspace: formatting, lints, docs, unit tests, and the
# end-to-end tests against the real binaries, browser tests included
# (scripts/with-chromedriver.sh installs chromium and chromium-driver when
# missing and runs chromedriver for the run). Set
# TEST_DATABASE_URL=postgres://… to run the storage and end-to-end tests on
# PostgreSQL as well as SQLite. Browser screenshots: target/e2e-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

echo "== tests (browser screenshots: target/e2e-artifacts/)"
scripts/with-chromedriver.sh cargo test --workspace
