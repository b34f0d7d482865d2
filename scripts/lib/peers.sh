# Shared by scripts/quickstart.sh and scripts/test.sh: installs and starts what ballast needs
# from Debian's packages when it is missing. Sourced, not run.

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_UPDATED=""

# apt_install PACKAGE... : installs the packages that are not installed yet.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing ${missing[*]} (Debian packages)"
  if [ -z "$APT_UPDATED" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_docker_cli: the docker client (and dockerd, for machines without an engine).
ensure_docker_cli() {
  if ! command -v docker >/dev/null; then
    apt_install docker.io
  elif ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null; then
    apt_install docker.io
  fi
}

# ensure_docker_engine: an engine answering on DOCKER_HOST or the default socket; starts the
# system's dockerd in the background when none runs (quickstart only; tests start their own).
ensure_docker_engine() {
  ensure_docker_cli
  if docker info >/dev/null 2>&1; then return 0; fi
  echo "==> no Docker engine answers; starting dockerd (log: /tmp/ballast-dockerd.log)"
  $SUDO sh -c 'nohup dockerd >/tmp/ballast-dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "dockerd did not start; see /tmp/ballast-dockerd.log" >&2
  return 1
}

# make_busybox_image NAME [WWW_DIR]: imports a busybox-static rootfs as image NAME, offline.
make_busybox_image() {
  local name=$1 www=${2:-}
  if docker image inspect "$name" >/dev/null 2>&1; then return 0; fi
  apt_install busybox-static
  local root
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/www" "$root/data"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
  echo "root:x:0:" >"$root/etc/group"
  if [ -n "$www" ]; then cp -r "$www"/. "$root/www/"; fi
  tar -C "$root" -c . | docker import --change 'CMD ["sh"]' - "$name" >/dev/null
  rm -rf "$root"
  echo "==> made image $name from busybox-static (no registry needed)"
}
