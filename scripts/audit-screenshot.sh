#!/usr/bin/env bash
# Renders the HTML audit report of the demo build in headless Chromium and saves a PNG, so the
# charts are checked by eye in a real browser (the tests check the HTML statically).
#
#   bash scripts/audit-screenshot.sh [OUT_PNG]      # default docs/audit-report.png
#
# Needs Debian's chromium (`apt-get install chromium`). Builds the demo into out/demo if it is not
# there, writes out/demo-audit.html, and screenshots its top (verdict and the first stage's charts).
set -euo pipefail
cd "$(dirname "$0")/.."
png="${1:-docs/audit-report.png}"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
    echo "error: chromium not found: install it (apt-get install chromium) and run again" >&2
    exit 2
fi
cargo build --release --quiet
mixtape=target/release/mixtape
[ -f out/demo/_mixtape/build.json ] || "$mixtape" build recipes/demo.yaml --out out/demo --quiet
"$mixtape" audit out/demo --recipe recipes/demo.yaml --html out/demo-audit.html > /dev/null
mkdir -p "$(dirname "$png")"
# --no-sandbox: root in a container has no user namespace for Chromium's sandbox.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --window-size=1040,1500 --screenshot="$png" "file://$PWD/out/demo-audit.html" 2> /dev/null
echo "wrote $png"
