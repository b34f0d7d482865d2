#!/usr/bin/env bash
# Quickstart: on a fresh Debian machine, builds ballast, makes the sample image offline, and
# applies manifests/ to the local Docker engine with the default SQLite store (.ballast/).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/peers.sh

ensure_docker_engine
www=$(mktemp -d)
echo "<h1>Hello from ballast</h1>" >"$www/index.html"
make_busybox_image ballast-sample/busybox:1 "$www"
rm -rf "$www"

echo "==> building ballast (release; a few minutes the first time)"
cargo build --release --locked -p ballast-cli
ballast=./target/release/ballast

"$ballast" validate -f manifests
"$ballast" apply -f manifests --yes
"$ballast" get apps
echo
echo "The sample web app answers on http://127.0.0.1:18080/ — try: curl -s http://127.0.0.1:18080/"
echo "Edit manifests/*.yaml, then: $ballast diff --refresh && $ballast apply"
