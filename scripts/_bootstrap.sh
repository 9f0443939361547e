# Sourced by scripts/demo and scripts/test: a virtual environment in .venv on a fresh Debian
# machine (Debian's own Python refuses pip outside one), with csbridge installed into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${CSBRIDGE_VENV:-.venv}"

apt_install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "csbridge: please install as root: apt-get install $*" >&2
    return 1
  fi
}

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  # Not editable: the suite runs against the installed wheel, packaged schemas included.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${1:-.}"
}
