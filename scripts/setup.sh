#!/usr/bin/env bash
# Install what vfs needs on a Debian machine: the FUSE 3 library and fusermount3 (from
# Debian's packages, only if missing), then a virtual environment in .venv with vfs.
# Usage: scripts/setup.sh [--test]     (--test also installs the test dependencies)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v fusermount3 >/dev/null 2>&1 || need_apt+=(fuse3)
ldconfig -p 2>/dev/null | grep -q 'libfuse3\.so' || need_apt+=(libfuse3-3)
if [ "${1:-}" = "--test" ]; then
  command -v getfattr >/dev/null 2>&1 || need_apt+=(attr)
  command -v gawk >/dev/null 2>&1 || need_apt+=(gawk)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
[ -e /dev/fuse ] || echo "warning: /dev/fuse is missing: mounts will fail (load the fuse kernel module)" >&2

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
extra=""; [ "${1:-}" = "--test" ] && extra="[test]"
echo "== installing vfs${extra} into .venv"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e ".${extra}" 2>&1 | grep -v -i "warning: location" || true
if [ "${1:-}" = "--test" ]; then
  # PyMca's EDF reader is a test oracle; its fisx dependency has no wheel and is not needed for it
  .venv/bin/python -m pip install -q --no-deps "PyMca5>=5.9.7" 2>&1 | grep -v -i "warning: location" || true
fi
.venv/bin/python -c "import vfs, h5py, hdf5plugin, fabio, mfusepy, PIL, bitshuffle, imagecodecs, blosc2"
