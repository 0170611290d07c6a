#!/usr/bin/env bash
# Refreshes the README's screenshots in docs/screenshots/ from the browser
# tests (which save every step under target/e2e-artifacts/).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromedriver >/dev/null || { echo "run scripts/test.sh first (it installs chromium and chromedriver)" >&2; exit 1; }
cargo build -q -p party-a -p party-b
cargo test -q -p e2e-tests --test browser -- linking_initiated_at_a playing_from_a changing_the_peers_scopes the_pages_read_well
rm -rf docs/screenshots
mkdir -p docs/screenshots
shots=(link-from-a/0{1..9}-*.png play/09-card-updated-live.png settings/07-settings-before.png
  settings/09-saved.png phone/07-home-phone.png)
for shot in "${shots[@]}"; do
  for f in target/e2e-artifacts/$shot; do
    cp "$f" "docs/screenshots/$(dirname "$shot")-$(basename "$f")"
  done
done
echo "docs/screenshots updated"
