#!/bin/sh
# Shared by scripts/run and scripts/test: make sure Python 3.11+ with venv exists,
# install Debian packages given as arguments, and build .venv with the given extras.
set -eu
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
extras="$1"; shift
need_apt=""
command -v python3 >/dev/null 2>&1 || need_apt="python3"
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then need_apt="$need_apt python3-venv"; fi
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt="$need_apt $pkg"
done
if [ -n "$need_apt" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $need_apt
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e ".[$extras]"
