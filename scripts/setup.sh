#!/usr/bin/env bash
# Idempotent setup: Debian packages the stack needs, then .venv with mowm_ros (editable) and
# its extras. `make setup` calls this only when setup.py, constraints.txt or this file changed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
# libusb-1.0-0: `import open3d`; libosmesa6: headless MuJoCo (MUJOCO_GL=osmesa);
# chromium: the tests open the Rerun web viewer in headless Chromium.
DEB_PACKAGES=(libusb-1.0-0 libosmesa6 chromium)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ "$version" != "3.11" ]]; then
  echo "setup: the ROS 2 wheels from PyPI are built for Python 3.11, but $PYTHON is $version." >&2
  echo "setup: run 'make setup PYTHON=/path/to/python3.11'." >&2
  exit 1
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 \
  | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
echo "setup: installing mowm_ros[ros,sim,view,test] into $VENV (editable)"
# The machine's pip config lists extra local indexes; their "is ignored" notes are noise.
"$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[ros,sim,view,test]' 2>&1 \
  | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
echo "setup: done"
