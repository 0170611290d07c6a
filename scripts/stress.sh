#!/usr/bin/env bash
# Stress on loopback: party B (release, default workers, SQLite in a temporary
# directory) under floods it should survive, watched through its resident
# memory (VmRSS from /proc, sampled every 100 ms):
#   1. RSS idle, right after a first start on an empty database;
#   2. LOGIN_FLOOD concurrent wrong-password POST /login for alice (each with
#      its own session cookie and csrf_token from a GET /login first): answers
#      by status, peak RSS during the flood, RSS 5 s after it ends;
#   3. DEVICE_FLOOD POST /device_authorization (client_id=speaker,
#      login_hint=alice), DEVICE_CONCURRENCY at a time: answers by status and
#      the device_requests rows created.
# Bounded: every flood request has a timeout and each flood a hard deadline;
# if RSS passes RSS_LIMIT_MB the server is killed (and restarted for the next
# step). Everything started here is stopped on exit. B_ARGS adds flags to
# party B, e.g. lifting the per-address rate limits (all floods come from
# 127.0.0.1) to test the bounds behind them:
#   LOGIN_FLOOD=1000 DEVICE_FLOOD=2000 DEVICE_CONCURRENCY=200 RSS_LIMIT_MB=8192 scripts/stress.sh
#   B_ARGS="--rate-sign-in 1000000/s --rate-sign-in-global 1000000/s" scripts/stress.sh
set -euo pipefail
cd "$(dirname "$0")/.."

LOGIN_FLOOD="${LOGIN_FLOOD:-1000}"
DEVICE_FLOOD="${DEVICE_FLOOD:-2000}"
DEVICE_CONCURRENCY="${DEVICE_CONCURRENCY:-200}"
RSS_LIMIT_MB="${RSS_LIMIT_MB:-8192}"
DEADLINE="${DEADLINE:-60}"
read -r -a b_args <<<"${B_ARGS:-}"

echo "== building (release)"
cargo build --release -q -p party-b
cargo build --release -q -p e2e-tests --bin flood
bin="${CARGO_TARGET_DIR:-target}/release"

work="$(mktemp -d)"
pids=""
trap 'kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_b() {
  local port; port=$(free_port)
  B="http://127.0.0.1:$port"
  "$bin/party-b" --listen "127.0.0.1:$port" --public-url "$B" --peer-url http://127.0.0.1:9 \
    --database-url "sqlite://$work/b.db" ${b_args[@]+"${b_args[@]}"} >>"$work/out.log" 2>>"$work/err.log" &
  server=$!
  pids="$pids $server"
  for _ in $(seq 1 100); do curl -sf "$B/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "party B did not start" >&2; tail -n 20 "$work/err.log" >&2; exit 1
}
status_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status" 2>/dev/null || true; }
mb() { if [ -n "$1" ]; then awk -v kb="$1" 'BEGIN { printf "%.1f MB", kb / 1024 }'; else echo "(no process)"; fi; }

# Samples the server's VmRSS every 100 ms into $work/rss until stopped; kills
# the server (and notes it in $work/killed) past RSS_LIMIT_MB.
start_sampler() {
  : >"$work/rss"
  (
    while kill -0 "$server" 2>/dev/null; do
      kb=$(status_kb "$server" VmRSS)
      [ -n "$kb" ] || break
      echo "$kb" >>"$work/rss"
      if [ "$kb" -gt $((RSS_LIMIT_MB * 1024)) ]; then
        echo "$kb" >"$work/killed"
        kill -9 "$server" 2>/dev/null
        break
      fi
      sleep 0.1
    done
  ) &
  sampler=$!
  pids="$pids $sampler"
}
stop_sampler() { kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; }
peak_kb() { sort -n "$work/rss" | tail -n 1; }
# After a flood: the peak, and the verdict when the sampler had to kill the server.
report_peak() {
  echo "peak RSS during the flood (sampled every 100 ms): $(mb "$(peak_kb)") over $(wc -l <"$work/rss") samples"
  if [ -f "$work/killed" ]; then
    echo "RSS passed the ${RSS_LIMIT_MB} MB limit ($(mb "$(cat "$work/killed")")): the server was killed (SIGKILL)"
    wait "$server" 2>/dev/null || true
    rm -f "$work/killed"
    return 1
  fi
  return 0
}
rows() {
  if command -v sqlite3 >/dev/null; then sqlite3 "$work/b.db" "SELECT COUNT(*) FROM $1"
  else "$bin/flood" count "sqlite://$work/b.db?mode=ro" "$1"; fi
}

echo "== party B (release, default workers, SQLite at a fresh path, loopback)${B_ARGS:+, flags: $B_ARGS}"
start_b
sleep 1
echo "RSS idle after a first start on an empty database: $(mb "$(status_kb "$server" VmRSS)")"

echo "== $LOGIN_FLOOD concurrent wrong-password POST /login (alice)"
start_sampler
timeout $((DEADLINE + 30)) "$bin/flood" login "$B" "$LOGIN_FLOOD" --deadline "$DEADLINE" || echo "(flood exited with $?)"
alive=1
if [ -f "$work/killed" ] || ! kill -0 "$server" 2>/dev/null; then alive=0; fi
[ "$alive" = 0 ] || sleep 5
stop_sampler
if report_peak && kill -0 "$server" 2>/dev/null; then
  echo "peak RSS of the process (VmHWM): $(mb "$(status_kb "$server" VmHWM)")"
  echo "RSS 5 s after the flood ended (final): $(mb "$(status_kb "$server" VmRSS)")"
else
  kill -0 "$server" 2>/dev/null || echo "the server is gone; restarting it for the next step"
  kill -0 "$server" 2>/dev/null || start_b
fi

echo "== $DEVICE_FLOOD POST /device_authorization (speaker, login_hint=alice), $DEVICE_CONCURRENCY at a time"
before=$(rows device_requests)
start_sampler
timeout $((DEADLINE + 30)) "$bin/flood" device "$B" "$DEVICE_FLOOD" "$DEVICE_CONCURRENCY" --deadline "$DEADLINE" \
  || echo "(flood exited with $?)"
stop_sampler
report_peak || true
after=$(rows device_requests)
echo "device_requests rows: $before before, $after after ($((after - before)) created)"
if kill -0 "$server" 2>/dev/null; then echo "RSS after the device flood: $(mb "$(status_kb "$server" VmRSS)")"; fi
