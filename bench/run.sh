#!/usr/bin/env bash
# Runs the benchmarks against a release build: bash bench/run.sh [diff-10k|noop-200|compose-50|daemon-latency|daemon-1k|servers-20|remote-noop-100]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/peers.sh
ensure_docker_cli
apt_install busybox-static docker-compose time openssh-server openssl util-linux
cargo build --release --locked -p ballast-cli -p ballast-bench
./target/release/ballast-bench "${1:-all}" ./target/release/ballast
