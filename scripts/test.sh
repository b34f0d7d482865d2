#!/usr/bin/env bash
# The whole test suite: installs the peers the tests need (Docker engine and client,
# busybox-static for offline images, PostgreSQL), checks formatting and lints, then runs every
# test. The tests start their own dockerd and PostgreSQL server when none is running.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/peers.sh

ensure_docker_cli
apt_install busybox-static postgresql
# The packaged PostgreSQL service is not used: the tests start their own server.
$SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true

if ! command -v cargo-nextest >/dev/null; then
  echo "==> installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> tests"
cargo nextest run --workspace --locked --no-fail-fast "$@"
