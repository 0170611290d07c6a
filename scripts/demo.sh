#!/usr/bin/env bash
# Builds (release) and starts both parties on their defaults, with the demo
# data seeded on an empty database. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
echo "Building both parties (release; the first build takes a few minutes)…"
cargo build --release -q -p party-a -p party-b

mkdir -p data
target/release/party-a &
a=$!
target/release/party-b &
b=$!
stop() { trap - INT TERM EXIT; kill "$a" "$b" 2>/dev/null || true; wait "$a" "$b" 2>/dev/null || true; echo "Both parties stopped."; }
trap stop INT TERM EXIT

for url in http://localhost:8001 http://localhost:8002; do
  for _ in $(seq 1 100); do curl -sf "$url/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
done

cat <<MSG

  Party A, the voice assistant (Aria Assistant):  http://localhost:8001
  Party B, the music service (Tempo Music):       http://localhost:8002

  Demo logins (separate accounts at each party):  alice / wonderland,  bob / builder
  Staff login at party B (kiosk):                 kiosk / staff-only
  Dev client secrets: voice-assistant-dev-secret (A at B), music-service-dev-secret (B at A)

  Data lives in ./data (delete it to start fresh). Press Ctrl-C to stop both.

MSG
wait "$a" "$b"
