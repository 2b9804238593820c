#!/usr/bin/env bash
# One command on a fresh machine: set up, write sample SPEC/EDF/HDF5 files, mount them,
# show the tree and a few reads, and say how to unmount.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATA=${DATA:-$PWD/sample-data}
MNT=${MNT:-$PWD/mnt}
if mountpoint -q "$MNT" 2>/dev/null || ! stat "$MNT" >/dev/null 2>&1; then
  fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
fi
echo "== writing sample data into $DATA"
.venv/bin/vfs sample "$DATA" >/dev/null
mkdir -p "$MNT"
echo "== mounting: .venv/bin/vfs mount $DATA $MNT"
.venv/bin/vfs mount "$DATA" "$MNT" --log-file "$PWD/vfs.log"
set -x
ls -l "$MNT"
ls -l "$MNT/sample.nxs/entry" "$MNT/sample.nxs/entry/instrument/detector"
cat "$MNT/sample.nxs/entry/title.txt"
head -3 "$MNT/sample.nxs/entry/instrument/detector/live_time.txt"
getfattr -d "$MNT/sample.nxs/entry/instrument/detector/image.npy" 2>/dev/null || cat "$MNT/sample.nxs/entry/instrument/detector/.image.attrs.txt"
ls "$MNT/scans.spec" "$MNT/scans.spec/1.1/measurement" 2>/dev/null || true
awk '{ s += $1 } END { print "sum of Detector:", s }' "$MNT/scans.spec/1.1/measurement/Detector.txt" 2>/dev/null || true
ls "$MNT/stack.edf" 2>/dev/null || true
.venv/bin/python -c "
import numpy as np
cube = np.load('$MNT/sample.nxs/entry/cube/data.npy', mmap_mode='r')
print('cube', cube.shape, cube.dtype, '- one spectrum, max:', float(cube[10, 20, :].max()))
"
{ set +x; } 2>/dev/null
{ command -v tree >/dev/null && tree -L 3 "$MNT" || find "$MNT" -maxdepth 3; } | head -40 || true  # head closes the pipe early
echo
echo "The mount is up at $MNT (log: $PWD/vfs.log). Unmount it with:"
echo "    fusermount3 -u $MNT"
