#!/usr/bin/env bash
# Refreshes the README's screenshots in docs/screenshots/ from the browser
# tests (which save every step under target/e2e-artifacts/).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p party-a -p party-b
scripts/with-chromedriver.sh cargo test -q -p e2e-tests --test browser -- linking_initiated_at_a playing_from_a changing_the_peers_scopes every_page_of_the_link the_audit_log denying_the_reciprocal the_trace_teaches a_kiosk_staff
rm -rf docs/screenshots
mkdir -p docs/screenshots
shots=(link-from-a/0{1..9}-*.png play/09-card-updated-live.png settings/07-settings-before.png
  settings/09-saved.png phone/07-home-phone.png audit/07-audit-a.png audit/10-audit-b-staff.png
  deny/06-outcome.png trace/07-trace-desktop.png trace-phone/03-trace-phone.png
  kiosk/04-kiosk-wrong-code.png kiosk/05-kiosk-approved.png)
for shot in "${shots[@]}"; do
  for f in target/e2e-artifacts/$shot; do
    cp "$f" "docs/screenshots/$(dirname "$shot")-$(basename "$f")"
  done
done
echo "docs/screenshots updated"
