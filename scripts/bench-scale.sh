# The scale phase of scripts/bench.sh (sourced by it when SCALE_USERS is set;
# uses its helpers: bin, work, pids, free_port, user_token, ratio, median).
# Two party B instances on PostgreSQL, each one worker on core 0 (wrk on core
# 1), side by side: one on a schema with the demo data, one on a schema where
# SQL seeded SCALE_USERS users' worth of rows shaped as the code writes them
# (per user: a grant redeemed by the peer's client, 3 refresh tokens, 2 audit
# entries, a trace event, a session; per two users: an authorization code and
# a finished link flow), spread over time so part of each kind is past its
# retention. Each prune batch statement is EXPLAIN ANALYZEd on the seeded
# data; the first prune pass (the backlog) and a steady one are timed from the
# party's log; then every page and endpoint is measured on both, in
# alternating rounds (SCALE_ROUNDS of SCALE_DURATION; this VM's speed drifts),
# and the medians compared.
#   SCALE_USERS=100000 scripts/bench.sh         (a quick run)
#   SCALE_USERS=1000000 SCALE_ROUNDS=3 SCALE_DURATION=3s scripts/bench.sh

scale_phase() {
  local n="$SCALE_USERS" duration="${SCALE_DURATION:-3s}" rounds="${SCALE_ROUNDS:-3}"
  local pg="${BENCH_DATABASE_URL:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}}"
  command -v psql >/dev/null || { echo "the scale phase needs psql" >&2; return 1; }
  local tag="$$_$RANDOM"
  declare -gA SCHEMA=([demo]="scale_demo_$tag" [scale]="scale_seeded_$tag") PORT=() SERVER=() LOG=()
  local x
  for x in demo scale; do
    psql "$pg" -qc "CREATE SCHEMA ${SCHEMA[$x]}" || { echo "$pg is not reachable" >&2; return 1; }
    PORT[$x]=$(free_port)
  done
  # set -e holds in the trap too: each step goes on whether the one before succeeded.
  trap 'kill $pids 2>/dev/null || true; wait $pids 2>/dev/null || true
    psql "'"$pg"'" -qc "DROP SCHEMA '"${SCHEMA[demo]}"' CASCADE; DROP SCHEMA '"${SCHEMA[scale]}"' CASCADE" >/dev/null 2>&1 || true
    rm -rf "$work"' EXIT
  local sep='?'; case "$pg" in *\?*) sep='&';; esac
  url() { echo "http://127.0.0.1:${PORT[$1]}"; }
  sql() { local on="$1"; shift; PGOPTIONS="-c search_path=${SCHEMA[$on]}" psql "$pg" -qAtX -v ON_ERROR_STOP=1 "$@"; }
  start() { # demo|scale, log file: starts that party B, waits until it answers; START_MS: how long that took
    LOG[$1]="$2"
    local t0; t0=$(date +%s%N)
    taskset -c 0 "$bin/party-b" --listen "127.0.0.1:${PORT[$1]}" --public-url "$(url "$1")" --peer-url http://127.0.0.1:9 \
      --database-url "$pg${sep}options=-c%20search_path%3D${SCHEMA[$1]}" --workers 1 >/dev/null 2>"$2" &
    SERVER[$1]=$!; pids="$pids ${SERVER[$1]}"
    for _ in $(seq 1 1200); do curl -sf "$(url "$1")/healthz" >/dev/null && break; sleep 0.05; done
    START_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
  }
  stop() { kill "${SERVER[$1]}"; wait "${SERVER[$1]}" 2>/dev/null || true; }
  # The party prunes once as it starts (then hourly): the pass's time, from its log.
  prune_ms() {
    for _ in $(seq 1 2400); do grep -q "prune pass took" "${LOG[$1]}" && break; sleep 0.25; done
    grep -o "prune pass took [0-9]* ms" "${LOG[$1]}" | head -n1 | awk '{print $4}'
  }

  # Probe tokens for the refresh and revocation runs: each request uses a
  # token of its own (a refresh token is single-use), in a grant of its own,
  # of a user of its own (revoking the peer's token ends that user's link).
  probes() { # demo|scale, prefix, count
    sql "$1" <<SQL
INSERT INTO users (id, username, password_hash, role, created_at)
  SELECT 'p-$2-' || i, 'probe-$2-' || i, 'x', 'user', $now FROM generate_series(1, $3) i;
INSERT INTO grants (id, client_id, user_id, scope, audience, created_at, redeemed_at)
  SELECT 'g-$2-' || i, 'voice-assistant', 'p-$2-' || i, 'player:read', '$(url "$1")', $now, $now FROM generate_series(1, $3) i;
INSERT INTO refresh_tokens (digest, grant_id, expires_at)
  SELECT translate(rtrim(encode(sha256(convert_to('$2-' || i, 'UTF8')), 'base64'), '='), '+/', '-_'),
         'g-$2-' || i, $now + 30 * 86400 FROM generate_series(1, $3) i;
SQL
  }
  lua() { # file, body with the placeholder TOKEN, prefix (each request: prefix-1, prefix-2, ...)
    cat >"$1" <<LUA
local n = 0
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Authorization"] = "Basic dm9pY2UtYXNzaXN0YW50OnZvaWNlLWFzc2lzdGFudC1kZXYtc2VjcmV0" }
request = function()
  n = n + 1
  return wrk.format("POST", nil, headers, (string.gsub("$2", "TOKEN", "$3-" .. n)))
end
LUA
  }
  declare -gA TOKEN=() COOKIE=()
  prepare() { # demo|scale: alice's session and access token, the probes and scripts of every round
    local jar="$work/jar-$1" B; B=$(url "$1"); : >"$jar"
    TOKEN[$1]=$(user_token "$B" "$B" "$jar")
    COOKIE[$1]=$(awk 'NF >= 7 && ($1 !~ /^#/ || $1 ~ /^#HttpOnly_/) {printf "%s%s=%s", s, $6, $7; s="; "}' "$jar")
    local round
    for round in $(seq 1 "$rounds"); do
      for kind in refresh revoke; do probes "$1" "$kind-$round" $(( ${duration%s} * 4000 )); done
      lua "$work/refresh-$1-$round.lua" "grant_type=refresh_token&refresh_token=TOKEN" "refresh-$round"
      lua "$work/revoke-$1-$round.lua" "token=TOKEN&token_type_hint=refresh_token" "revoke-$round"
    done
    cat >"$work/introspect-$1.lua" <<LUA
wrk.method = "POST"
wrk.body = "token=${TOKEN[$1]}"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic dm9pY2UtYXNzaXN0YW50OnZvaWNlLWFzc2lzdGFudC1kZXYtc2VjcmV0"
LUA
    sql "$1" -c "VACUUM ANALYZE" 2>/dev/null
  }
  paths=("GET / (signed in)" "GET /link/settings (signed in)" "GET /link/trace (signed in)" "POST /token client_credentials"
    "GET /api/player" "POST /introspect (access token)" "POST /token refresh_token" "POST /revoke (refresh token)")
  wrk_args() { # path, demo|scale, round: sets ARGS
    local B; B=$(url "$2")
    case "$1" in
      "GET / (signed in)") ARGS=(-H "Cookie: ${COOKIE[$2]}" "$B/") ;;
      "GET /link/settings (signed in)") ARGS=(-H "Cookie: ${COOKIE[$2]}" "$B/link/settings") ;;
      "GET /link/trace (signed in)") ARGS=(-H "Cookie: ${COOKIE[$2]}" "$B/link/trace") ;;
      "POST /token client_credentials") ARGS=(-s "$work/token.lua" "$B/token") ;;
      "GET /api/player") ARGS=(-H "Authorization: Bearer ${TOKEN[$2]}" "$B/api/player") ;;
      "POST /introspect (access token)") ARGS=(-s "$work/introspect-$2.lua" "$B/introspect") ;;
      "POST /token refresh_token") ARGS=(-s "$work/refresh-$2-$3.lua" "$B/token") ;;
      "POST /revoke (refresh token)") ARGS=(-s "$work/revoke-$2-$3.lua" "$B/revoke") ;;
    esac
  }
  ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) print v / 1000; else if (v ~ /ms$/) print v + 0; else print v * 1000 }'; }
  declare -gA RPS=() P50=() P99=() BAD=()
  one() { # path, demo|scale, round: appends that run's figures
    wrk_args "$1" "$2" "$3"
    local out; out=$(taskset -c 1 wrk -t1 -c"${CONNECTIONS:-64}" -d"$duration" --latency "${ARGS[@]}")
    RPS[$2,$1]+=" $(echo "$out" | awk '/Requests\/sec/ {print $2}')"
    P50[$2,$1]+=" $(ms "$(echo "$out" | awk '$1=="50%" {print $2}')")"
    P99[$2,$1]+=" $(ms "$(echo "$out" | awk '$1=="99%" {print $2}')")"
    BAD[$2,$1]=$(( ${BAD[$2,$1]:-0} + $(echo "$out" | awk '/Non-2xx/ {n = $NF} END {print n + 0}') ))
  }

  now=$(date +%s)
  echo "== scale: two party B instances on PostgreSQL (demo data; $n users seeded), each 1 worker on core 0; wrk on core 1"
  start demo "$work/demo.log"; local demo_start="$START_MS"
  start scale "$work/migrate.log"; stop scale
  local half=$(( n / 2 ))
  echo "-- seeding $n users' rows"
  local t0; t0=$(date +%s)
  local B; B=$(url scale)
  sql scale <<SQL
SET synchronous_commit = off;
-- Sign-in hashes are slow by design and never read here: one real one, copied.
INSERT INTO users (id, username, password_hash, role, created_at)
  SELECT 'u-' || i, 'user' || i, (SELECT password_hash FROM users WHERE username = 'alice'), 'user', $now - 90 * 86400 + i::bigint * 80 * 86400 / $n
  FROM generate_series(1, $n) i;
-- One grant per user to the peer's client; one code per two grants, spread over two days
-- (half past the day pruning waits), one in ten of them never redeemed (so its grant holds no tokens).
INSERT INTO grants (id, client_id, user_id, scope, audience, created_at, redeemed_at)
  SELECT 'g-' || i, 'voice-assistant', 'u-' || i, 'player:read player:control', '$B', $now - i::bigint * 30 * 86400 / $n,
         CASE WHEN i <= $half AND i % 10 = 0 THEN NULL ELSE $now - i::bigint * 30 * 86400 / $n + 5 END
  FROM generate_series(1, $n) i;
INSERT INTO authorization_codes (digest, grant_id, client_id, user_id, redirect_uri, scope, audience, code_challenge, expires_at, consumed_at)
  SELECT md5('code' || i) || md5('c' || i), 'g-' || i, 'voice-assistant', 'u-' || i, 'http://127.0.0.1:9/link/callback',
         'player:read player:control', '$B', md5('challenge' || i), $now - i::bigint * 2 * 86400 / $half + 600,
         CASE WHEN i % 10 = 0 THEN NULL ELSE $now - i::bigint * 2 * 86400 / $half + 10 END
  FROM generate_series(1, $half) i;
-- Three refresh tokens per redeemed grant (two rotated out), expiring over a month, a few expired.
INSERT INTO refresh_tokens (digest, grant_id, expires_at, used_at)
  SELECT md5('refresh' || j) || md5('r' || j), 'g-' || ((j - 1) % $n + 1), $now - 2 * 86400 + j::bigint * 32 * 86400 / (3 * $n),
         CASE WHEN j > $n THEN $now - j::bigint * 86400 / (3 * $n) END
  FROM generate_series(1, 3 * $n) j
  WHERE NOT ((j - 1) % $n + 1 <= $half AND ((j - 1) % $n + 1) % 10 = 0);
-- Two audit entries per user, chained.
INSERT INTO audit_events (seq, stream, prev, digest, kid, at, set_jwt)
  SELECT 1000000000 + j, 'u-' || ((j - 1) % $n + 1), CASE WHEN j > $n THEN md5((j - $n)::text) ELSE '' END, md5(j::text),
         'bench', $now - j::bigint * 30 * 86400 / (2 * $n), 'eyJhbGciOiJFUzI1NiJ9.' || repeat(md5(j::text), 12) || '.sig'
  FROM generate_series(1, 2 * $n) j;
-- Link history over ten days (seven kept) and finished flows over forty (thirty kept).
INSERT INTO link_trace (seq, user_id, attempt, leg, sender, receiver, summary, at)
  SELECT j, 'u-' || j, md5('a' || j), chr(65 + j % 7), 'music-service', 'voice-assistant',
         'POST /token grant_type=authorization_code (code redacted)', $now - j::bigint * 10 * 86400 / $n
  FROM generate_series(1, $n) j;
INSERT INTO link_flows (id, user_id, step, state_digest, created_at, updated_at)
  SELECT 'f-' || j, 'u-' || j, 'done', md5('state' || j), $now - j::bigint * 40 * 86400 / $half - 60, $now - j::bigint * 40 * 86400 / $half
  FROM generate_series(1, $half) j;
-- Sessions created over a day (half past the 12-hour lifetime), last seen within two hours after.
INSERT INTO sessions (id_digest, user_id, created_at, last_seen_at)
  SELECT md5('session' || j) || md5('s' || j), 'u-' || j, $now - j::bigint * 86400 / $n, LEAST($now, $now - j::bigint * 86400 / $n + j % 7200)
  FROM generate_series(1, $n) j;
SQL
  sql scale -c "VACUUM ANALYZE"
  echo "   seeded in $(( $(date +%s) - t0 )) s: $(sql scale -c "SELECT string_agg(relname || ' ' || n_live_tup, ', ' ORDER BY relname)
    FROM pg_stat_user_tables WHERE schemaname = '${SCHEMA[scale]}' AND n_live_tup > 1000")"

  echo "-- each prune batch statement before the first pass (EXPLAIN ANALYZE, rolled back; 1,000 rows each)"
  local day_ago=$(( now - 86400 ))
  explain() { # name, statement
    local plan; plan=$(printf 'BEGIN;\nEXPLAIN (ANALYZE, COSTS OFF) %s;\nROLLBACK;\n' "$2" | sql scale)
    printf '  %-44s %8s ms  %s\n' "$1" "$(echo "$plan" | awk '/Execution Time/ {print $3}')" \
      "$(echo "$plan" | grep -oE '(Seq Scan on|Index (Only )?Scan (Backward )?using|Bitmap Index Scan on) [a-z_]+' \
        | sort -u | paste -sd ';' | sed 's/;/; /g')"
  }
  explain "codes: the batch" "SELECT digest, grant_id FROM authorization_codes WHERE expires_at < $day_ago ORDER BY expires_at LIMIT 1000"
  local list; list=$(sql scale -c "SELECT string_agg(quote_literal(grant_id), ',') FROM (SELECT grant_id FROM authorization_codes WHERE expires_at < $day_ago ORDER BY expires_at LIMIT 1000) b")
  [ -n "$list" ] || list="''"
  explain "codes: their never-redeemed grants" "DELETE FROM grants WHERE id IN ($list) AND redeemed_at IS NULL AND revoked_at IS NULL
    AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.grant_id = grants.id)
    AND NOT EXISTS (SELECT 1 FROM authorization_codes c WHERE c.grant_id = grants.id AND c.expires_at >= $day_ago)"
  list=$(sql scale -c "SELECT string_agg(quote_literal(digest), ',') FROM (SELECT digest FROM authorization_codes WHERE expires_at < $day_ago ORDER BY expires_at LIMIT 1000) b")
  [ -n "$list" ] || list="''"
  explain "codes: the batch's codes" "DELETE FROM authorization_codes WHERE digest IN ($list)"
  batch() { echo "DELETE FROM $1 WHERE $2 = ANY(ARRAY(SELECT $2 FROM $1 WHERE $3 ORDER BY $4 LIMIT 1000))"; }
  explain "refresh tokens" "$(batch refresh_tokens digest "expires_at < $day_ago" expires_at)"
  explain "link trace" "$(batch link_trace at "at < $(( now - 7 * 86400 ))" at)"
  explain "link flows" "$(batch link_flows id "step IN ('done', 'failed') AND updated_at < $(( now - 30 * 86400 ))" updated_at)"
  explain "sessions past their lifetime" "$(batch sessions id_digest "created_at < $(( now - 43200 ))" created_at)"
  explain "sessions idle" "$(batch sessions id_digest "last_seen_at < $(( now - 7200 ))" last_seen_at)"
  explain "home page: redeemed_grants" "SELECT id, client_id, user_id, scope, audience, created_at, revoked_at FROM grants
    WHERE user_id = 'u-$half' AND client_id = 'voice-assistant' AND revoked_at IS NULL AND redeemed_at IS NOT NULL ORDER BY created_at"

  start scale "$work/first.log"; local first_start="$START_MS"
  echo "-- first start on the seeded data: ${first_start} ms; its prune pass (the backlog) took $(prune_ms scale) ms"
  stop scale
  sql scale -c "VACUUM ANALYZE"
  sql scale -c "CHECKPOINT"
  start scale "$work/scale.log"; local start_ms="$START_MS"
  echo "-- start-up at scale: ${start_ms} ms (demo data: ${demo_start} ms, which seeds the demo users); a steady prune pass took $(prune_ms scale) ms"
  prepare demo; prepare scale

  echo "-- each path on both, alternating, $rounds rounds of $duration (${CONNECTIONS:-64} connections); medians"
  local path round
  for path in "${paths[@]}"; do
    for round in $(seq 1 "$rounds"); do
      # Who goes first alternates too, so a drift within a round favours neither.
      if [ $((round % 2)) = 1 ]; then one "$path" demo "$round"; one "$path" scale "$round"
      else one "$path" scale "$round"; one "$path" demo "$round"; fi
    done
  done
  stop demo; stop scale

  echo "== at scale against the demo data (req/s: medians and their ratio; p50 and p99 in ms, medians)"
  printf '  %-34s %9s %9s %6s   %-17s %-19s %s\n' path demo scale ratio "p50 demo->scale" "p99 demo->scale" non-2xx
  for path in "${paths[@]}"; do
    local rd rs
    rd=$(echo "${RPS[demo,$path]}" | median); rs=$(echo "${RPS[scale,$path]}" | median)
    printf '  %-34s %9.0f %9.0f %6s   %6.2f -> %6.2f   %7.2f -> %7.2f   %s\n' "$path" "$rd" "$rs" "$(ratio "$rs" "$rd")" \
      "$(echo "${P50[demo,$path]}" | median)" "$(echo "${P50[scale,$path]}" | median)" \
      "$(echo "${P99[demo,$path]}" | median)" "$(echo "${P99[scale,$path]}" | median)" \
      "${BAD[demo,$path]:-0}/${BAD[scale,$path]:-0}"
  done
}
