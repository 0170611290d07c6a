#!/usr/bin/env bash
# Builds (release) and starts both parties on their defaults, with the demo
# data seeded on an empty database. Their log lines are prefixed [A] and [B].
# The banner is printed only once both answer /healthz; otherwise the script
# stops both and says which party failed and why. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs; Rust 1.89 or newer)" >&2; exit 1; }
command -v cc >/dev/null || command -v gcc >/dev/null || command -v clang >/dev/null \
  || { echo "a C compiler is required (e.g. apt install build-essential)" >&2; exit 1; }
echo "Building both parties (release; the first build takes a few minutes)…"
cargo build --release -q -p party-a -p party-b
bin="${CARGO_TARGET_DIR:-target}/release"

# Something already answering on a party's port would pass for it below.
for port in 8001 8002; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "Port $port is already in use (another demo still running?); stop that first." >&2
    exit 1
  fi
done

mkdir -p data
"$bin/party-a" > >(sed -u 's/^/[A] /') 2>&1 &
a=$!
"$bin/party-b" > >(sed -u 's/^/[B] /') 2>&1 &
b=$!
stop() { trap - INT TERM EXIT; kill "$a" "$b" 2>/dev/null || true; wait "$a" "$b" 2>/dev/null || true; echo "Both parties stopped."; }
trap stop INT TERM EXIT

# GET /healthz with bash alone (no curl needed): true when it answers 200.
healthy() {
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
  printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
  IFS= read -r -t 2 line <&3 || line=""
  exec 3<&- 3>&-
  [[ "$line" == *" 200 "* ]]
}

for party in "A 8001 $a" "B 8002 $b"; do
  read -r name port pid <<<"$party"
  for _ in $(seq 1 100); do
    if kill -0 "$pid" 2>/dev/null && healthy "$port"; then continue 2; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "Party $name (port $port) stopped at start: its reason is in the [$name] lines above." >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "Party $name did not answer http://localhost:$port/healthz within 10 s; see the [$name] lines above." >&2
  exit 1
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
