#!/usr/bin/env bash
# Load benchmarks on loopback: party B on one core (one worker), wrk on the
# other, bounded runs. Prints req/s and p50/p99 for /healthz, the token
# endpoint (client_credentials, client_secret_basic, ES256) and a protected
# API call with a valid token (/api/whoami: the guard alone; /api/player:
# guard plus a database read); then the token endpoint and /healthz as ratios
# to bare-token (a bare actix server that only parses the form and signs the
# same ES256 JWT with one reused key, on the same core with the same wrk
# settings), measured in alternating rounds; then criterion benches of token
# signing and verification; then whole reciprocal links per second with both
# parties (one worker each, one core each) and the p50/p99 of the server-side
# reciprocal part (legs E-G).
#   DURATION=10s CONNECTIONS=64 RATIO_ROUNDS=6 RATIO_DURATION=4s LINK_USERS=200 LINK_CONCURRENCY=16 scripts/bench.sh
# With SCALE_USERS=N, the scale phase runs instead (scripts/bench-scale.sh):
# party B on PostgreSQL with the demo data and with N users' worth of rows
# seeded by SQL, each page and endpoint on both in alternating rounds, and
# the prune pass and its statements at that size.
#   SCALE_USERS=1000000 SCALE_ROUNDS=3 SCALE_DURATION=3s scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"

if ! command -v wrk >/dev/null; then
  echo "== installing wrk (Debian package)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null; fi
fi

echo "== building (release)"
cargo build --release -q -p party-a -p party-b
cargo build --release -q -p e2e-tests --bin link-bench --bin bare-token --bin round-robin
bin="${CARGO_TARGET_DIR:-target}/release"

work="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=""
trap 'kill $pids 2>/dev/null; wait $pids 2>/dev/null; rm -rf "$work"' EXIT

field() { grep -o "name=\"$1\" value=\"[^\"]*\"" | head -n1 | sed 's/.*value="//; s/"$//'; }
# Signs alice in at $1, keeping the session cookie in the jar $2.
sign_in() {
  local csrf; csrf=$(curl -s -c "$2" -b "$2" "$1/login" | field csrf_token)
  curl -s -c "$2" -b "$2" -o /dev/null --data-urlencode "csrf_token=$csrf" -d username=alice -d password=wonderland "$1/login"
}
# A user's access token at $1 through the real code flow (login, consent,
# PKCE), for the resource $2 (default: $1); the jar $3 keeps alice's session.
user_token() {
  local B="$1" resource="${2:-$1}" jar="${3:-$(mktemp -p "$work")}"
  sign_in "$B" "$jar"
  verifier=$(head -c 48 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
  challenge=$(printf '%s' "$verifier" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=\n')
  redirect="http://127.0.0.1:9/link/callback"
  consent=$(curl -s -c "$jar" -b "$jar" -G "$B/authorize" --data-urlencode "client_id=voice-assistant" \
    --data-urlencode "response_type=code" --data-urlencode "redirect_uri=$redirect" --data-urlencode "scope=player:read" \
    --data-urlencode "state=bench" --data-urlencode "code_challenge=$challenge" --data-urlencode "code_challenge_method=S256")
  location=$(curl -s -c "$jar" -b "$jar" -o /dev/null -w '%{redirect_url}' \
    --data-urlencode "csrf_token=$(echo "$consent" | field csrf_token)" -d client_id=voice-assistant -d response_type=code \
    --data-urlencode "redirect_uri=$redirect" --data-urlencode "scope=player:read" -d state=bench \
    --data-urlencode "code_challenge=$challenge" -d code_challenge_method=S256 --data-urlencode "resource=$resource" \
    -d decision=approve "$B/authorize")
  code=$(printf '%s' "$location" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
  token=$(curl -s -u voice-assistant:voice-assistant-dev-secret -d grant_type=authorization_code --data-urlencode "code=$code" \
    --data-urlencode "redirect_uri=$redirect" --data-urlencode "code_verifier=$verifier" "$B/token" \
    | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
  [ -n "$token" ] || { echo "could not obtain an access token at $B (authorization answered: ${location:-nothing})" >&2; exit 1; }
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$B/api/player")" = 200 ] \
    || { echo "the API refused the token" >&2; exit 1; }
  echo "$token"
}

cat >"$work/token.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=player%3Aread"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic dm9pY2UtYXNzaXN0YW50OnZvaWNlLWFzc2lzdGFudC1kZXYtc2VjcmV0"
LUA

run() { # name, wrk args...
  local name="$1"; shift
  local out; out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$@")
  local rps p50 p99 errors
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errors=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  printf '%-44s %10s req/s   p50 %8s   p99 %8s%s\n' "$name" "$rps" "$p50" "$p99" "${errors:+   non-2xx: $errors}"
  RPS="$rps"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

if [ -n "${SCALE_USERS:-}" ]; then
  # shellcheck source=scripts/bench-scale.sh
  . scripts/bench-scale.sh
  scale_phase
  exit 0
fi

port=$(free_port)
B="http://127.0.0.1:$port"
taskset -c 0 "$bin/party-b" --listen "127.0.0.1:$port" --public-url "$B" --peer-url http://127.0.0.1:9 \
  --database-url "sqlite://$work/b.db" --workers 1 >"$work/out.log" 2>"$work/err.log" &
server=$!
pids="$server"
for _ in $(seq 1 100); do curl -sf "$B/healthz" >/dev/null && break; sleep 0.1; done
token=$(user_token "$B")

echo "== load (server: 1 worker on core 0; wrk: 1 thread, $CONNECTIONS connections on core 1; $DURATION each)"
run "GET /healthz" "$B/healthz"
run "POST /token client_credentials (ES256)" -s "$work/token.lua" "$B/token"
run "GET /api/whoami with a valid token (guard)" -H "Authorization: Bearer $token" "$B/api/whoami"
run "GET /api/player with a valid token (+SQLite)" -H "Authorization: Bearer $token" "$B/api/player"

echo "== ceiling: party B against bare-token (bare actix, same ES256 JWT, key reused), both 1 worker on core 0"
# This machine's speed drifts by 10-30% from one minute to the next, so the
# two servers run side by side and are measured in alternating rounds of
# RATIO_DURATION each; the ratio is of the medians.
bport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18003)
T="http://127.0.0.1:$bport"
taskset -c 0 "$bin/bare-token" --listen "127.0.0.1:$bport" --workers 1 >"$work/bare.out" 2>"$work/bare.err" &
bare=$!
pids="$pids $bare"
for _ in $(seq 1 100); do curl -sf "$T/healthz" >/dev/null && break; sleep 0.1; done
curl -s -u voice-assistant:voice-assistant-dev-secret -d grant_type=client_credentials -d scope=player:read "$T/token" \
  | grep -q '"access_token":"ey' || { echo "bare-token did not answer a token" >&2; exit 1; }
rounds="${RATIO_ROUNDS:-6}"
compare() { # name, path, wrk args...
  local name="$1" path="$2"; shift 2
  local ours="" theirs=""
  one() { taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${RATIO_DURATION:-4s}" "$@" | awk '/Requests\/sec/ {print $2}'; }
  for round in $(seq 1 "$rounds"); do
    # Who goes first alternates too, so a drift within a round favours neither.
    if [ $((round % 2)) = 1 ]; then
      ours="$ours $(one "$@" "$B$path")"; theirs="$theirs $(one "$@" "$T$path")"
    else
      theirs="$theirs $(one "$@" "$T$path")"; ours="$ours $(one "$@" "$B$path")"
    fi
  done
  local a b; a=$(echo "$ours" | median); b=$(echo "$theirs" | median)
  printf '%-44s %s (median %.0f / %.0f req/s over %s rounds)\n' "$name" "$(ratio "$a" "$b")" "$a" "$b" "$rounds"
}
compare "token endpoint / bare ES256 endpoint:" /token -s "$work/token.lua"
compare "/healthz / bare actix route:" /healthz
kill "$server" "$bare"; wait "$server" "$bare" 2>/dev/null || true

# PostgreSQL: the same endpoints with party B's data in PostgreSQL, one
# instance and two behind round-robin (a per-connection TCP proxy in
# e2e-tests), each instance one worker on core 0; PostgreSQL and the proxy
# are not pinned. Skipped when PostgreSQL is not reachable.
pg="${BENCH_DATABASE_URL:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}}"
schema="bench_$$_$RANDOM"
if command -v psql >/dev/null && psql "$pg" -qc "CREATE SCHEMA $schema" 2>/dev/null; then
  sep='?'; case "$pg" in *\?*) sep='&';; esac
  pgb="$pg${sep}options=-c%20search_path%3D$schema"
  p1=$(free_port); p2=$(free_port); pp=$(free_port)
  P="http://127.0.0.1:$pp"
  start_b() { # port, public URL
    taskset -c 0 "$bin/party-b" --listen "127.0.0.1:$1" --public-url "$2" --peer-url http://127.0.0.1:9 \
      --database-url "$pgb" --workers 1 >>"$work/pg.out" 2>>"$work/pg.err" &
    pids="$pids $!"
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && break; sleep 0.1; done
  }
  # Both runs serve one public URL (the proxy's), so the user's token from the first serves both.
  start_b "$p1" "$P"
  echo "== PostgreSQL, one instance (1 worker on core 0)"
  pg_token=$(user_token "http://127.0.0.1:$p1" "$P")
  run "POST /token client_credentials (PostgreSQL)" -s "$work/token.lua" "http://127.0.0.1:$p1/token"
  run "GET /api/player (+PostgreSQL)" -H "Authorization: Bearer $pg_token" "http://127.0.0.1:$p1/api/player"
  kill $pids 2>/dev/null; wait 2>/dev/null || true; pids=""
  start_b "$p1" "$P"; start_b "$p2" "$P"
  "$bin/round-robin" --listen "127.0.0.1:$pp" "127.0.0.1:$p1" "127.0.0.1:$p2" >/dev/null &
  pids="$pids $!"
  for _ in $(seq 1 100); do curl -sf "$P/healthz" >/dev/null && break; sleep 0.1; done
  echo "== PostgreSQL, two instances behind round-robin (each 1 worker on core 0)"
  run "POST /token client_credentials (2 × PostgreSQL)" -s "$work/token.lua" "$P/token"
  run "GET /api/player (2 × PostgreSQL)" -H "Authorization: Bearer $pg_token" "$P/api/player"
  kill $pids 2>/dev/null; wait 2>/dev/null || true; pids=""
  psql "$pg" -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 || true
else
  echo "== PostgreSQL: skipped (no psql, or $pg not reachable)"
fi

echo "== criterion: token signing and verification"
cargo bench -q -p shared-protocol --bench tokens 2>/dev/null | grep -E "^(sign|verify|guard)|time:"

echo "== links (party A: 1 worker on core 0; party B: 1 worker on core 1; A on SQLite, B on SQLite)"
# Every bench user signs up and in from 127.0.0.1: the sign-in rate limits would
# refuse most of them, so they are lifted here (this measures the protocol).
unlimited=(--rate-sign-in 1000000/s --rate-sign-in-global 1000000/s)
pa=$(free_port); pb=$(free_port)
LA="http://127.0.0.1:$pa"; LB="http://127.0.0.1:$pb"
taskset -c 0 "$bin/party-a" --listen "127.0.0.1:$pa" --public-url "$LA" --peer-url "$LB" \
  --database-url "sqlite://$work/la.db" --workers 1 --no-demo-data "${unlimited[@]}" >"$work/la.out" 2>"$work/la.err" &
pids="$pids $!"
taskset -c 1 "$bin/party-b" --listen "127.0.0.1:$pb" --public-url "$LB" --peer-url "$LA" \
  --database-url "sqlite://$work/lb.db" --workers 1 --no-demo-data "${unlimited[@]}" >"$work/lb.out" 2>"$work/lb.err" &
pids="$pids $!"
for url in "$LA" "$LB"; do for _ in $(seq 1 100); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done; done
echo "-- many users at once (throughput; latency includes queueing behind one worker per party)"
"$bin/link-bench" "$LA" "$LB" "${LINK_USERS:-200}" "${LINK_CONCURRENCY:-16}"
echo "-- one user at a time (the latency of the protocol work itself)"
"$bin/link-bench" "$LA" "$LB" 50 1
