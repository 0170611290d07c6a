#!/usr/bin/env bash
# Crashes mid-link on loopback: CRASH_RUNS runs (default 20), each with two
# instances of each party on PostgreSQL behind round-robin proxies,
# CRASH_LINKS users (default 20) linking at once (half from A, half from B),
# and one instance killed with SIGKILL at a random moment within the first
# CRASH_WINDOW_MS (default 3000) ms: of B in odd runs, of A in even ones.
# Then each user whose link is not whole does what the pages offer once
# ("Try again", the waiting request, or a new link), and every user must end
# linked both ways with one live grant per direction, each the one whose
# token the other party holds; unlinking must leave no live grant. A run
# fails when any user is left half-linked.
#   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test scripts/crash.sh
#   CRASH_RUNS=5 CRASH_LINKS=40 scripts/crash.sh
# Each run uses fresh PostgreSQL schemas in TEST_DATABASE_URL and stops every
# process it started (the test harness kills them when it drops them).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${TEST_DATABASE_URL:?set TEST_DATABASE_URL to a PostgreSQL database (several instances need one)}"
export TEST_DATABASE_URL
export CRASH_RUNS="${CRASH_RUNS:-20}" CRASH_LINKS="${CRASH_LINKS:-20}" CRASH_WINDOW_MS="${CRASH_WINDOW_MS:-3000}"
export RUST_BACKTRACE=0

echo "== building the parties and the crash runs (debug, as the e2e tests)"
cargo build -q -p party-a -p party-b
cargo test -q -p e2e-tests --test crash --no-run

echo "== $CRASH_RUNS runs, $CRASH_LINKS links each, one instance killed (SIGKILL) within ${CRASH_WINDOW_MS} ms"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The harness's own deadlines bound each run; this bounds the whole.
status=0
timeout $((CRASH_RUNS * 120 + 60)) cargo test -q -p e2e-tests --test crash -- --ignored --nocapture \
  >"$work/out" 2>&1 || status=$?
grep -E '^run [0-9]+:' "$work/out" || true
if [ "$status" != 0 ]; then
  echo "== failed ($status); the end of the output:"
  tail -n 40 "$work/out"
  exit "$status"
fi
echo "== every run left every user linked both ways, and nothing live after unlinking"
