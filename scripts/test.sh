#!/usr/bin/env bash
# Runs every test in the workspace: formatting, lints, unit tests, and the
# end-to-end tests against the real binaries, including the browser tests.
# Installs Debian's chromium and chromium-driver when missing, and runs one
# chromedriver on a free loopback port for the run. Set
# TEST_DATABASE_URL=postgres://… to run the storage and end-to-end tests on
# PostgreSQL as well as SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "== installing chromium and chromium-driver (Debian packages, for the browser tests)"
  sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq chromium chromium-driver >/dev/null
fi

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
chromedriver --port="$port" --allowed-ips=127.0.0.1 >/dev/null 2>&1 &
driver=$!
trap 'kill $driver 2>/dev/null; wait $driver 2>/dev/null || true' EXIT
export WEBDRIVER_URL="http://127.0.0.1:$port"

echo "== tests (browser screenshots: target/e2e-artifacts/)"
cargo test --workspace
