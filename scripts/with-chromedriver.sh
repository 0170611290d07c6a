#!/usr/bin/env bash
# Runs a command with a chromedriver for the browser tests: installs Debian's
# chromium and chromium-driver when missing, starts chromedriver on a free
# loopback port (WEBDRIVER_URL), names the browser (CHROME_BIN), and stops
# chromedriver and every browser it started when the command ends.
#   scripts/with-chromedriver.sh cargo test --workspace
set -euo pipefail

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "== installing chromium and chromium-driver (Debian packages, for the browser tests)"
  command -v apt-get >/dev/null || { echo "the browser tests need chromium and chromedriver; install them (apt-get was not found)" >&2; exit 1; }
  if [ "$(id -u)" = 0 ]; then as_root=(); else as_root=(sudo -n); fi
  if ! "${as_root[@]}" apt-get update -qq || ! DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq chromium chromium-driver >/dev/null; then
    echo "could not install chromium and chromium-driver: run as root, or with passwordless sudo, or install them yourself" >&2
    exit 1
  fi
  command -v chromium >/dev/null && command -v chromedriver >/dev/null \
    || { echo "chromium or chromedriver is still missing after installing" >&2; exit 1; }
fi
export CHROME_BIN="${CHROME_BIN:-$(command -v chromium)}"

free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
  else
    echo $((20000 + RANDOM % 20000))
  fi
}
port=$(free_port)
# Its own process group, so stopping it also stops any browser it left behind.
setsid chromedriver --port="$port" --allowed-ips=127.0.0.1 >/dev/null 2>&1 &
driver=$!
trap 'kill -- -$driver 2>/dev/null; wait $driver 2>/dev/null || true' EXIT
export WEBDRIVER_URL="http://127.0.0.1:$port"
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

"$@"
