"""The command line and the mount's life: background mode, SIGTERM, stale mountpoints,
many files with a bounded number open, files that change under the mount."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.mounting import mounted, require_fuse, unmount
from vfs.harness import in_mount_table

pytestmark = pytest.mark.mount
VFS = [sys.executable, "-m", "vfs"]


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_help_explains_options():
    out = subprocess.run([*VFS, "mount", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ["--foreground", "-o", "--cache-size", "--log-file", "--debug", "--formats", "fusermount3 -u",
                   "--allow-outside", "XDG_STATE_HOME"]:
        assert option in out


def test_background_mount_and_fusermount(tmp_path):
    require_fuse()
    src, mnt = tmp_path / "src", tmp_path / "mnt"
    src.mkdir()
    mnt.mkdir()
    (src / "a.txt").write_text("hello\n")
    try:
        subprocess.run([*VFS, "mount", str(src), str(mnt), "--log-file", str(tmp_path / "log"), "-o", "allow_other"],
                       check=True, timeout=60)
        assert os.path.ismount(mnt)
        assert (mnt / "a.txt").read_text() == "hello\n"
    finally:
        unmount(mnt)
    assert not os.path.ismount(mnt)


@pytest.fixture
def foreground(tmp_path):
    """A foreground ``vfs mount`` of an empty folder: (process, mountpoint), cleaned up."""
    require_fuse()
    src, mnt = tmp_path / "src", tmp_path / "mnt"
    src.mkdir()
    mnt.mkdir()
    proc = subprocess.Popen([*VFS, "mount", str(src), str(mnt), "-f"], stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: os.path.ismount(mnt))
        yield proc, src, mnt
    finally:
        unmount(mnt)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_on_foreground_mount_unmounts(foreground):
    proc, _, mnt = foreground
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert not os.path.ismount(mnt)


def test_stale_mountpoint_is_reported_with_the_fix(foreground):
    proc, src, mnt = foreground
    proc.kill()
    proc.wait()
    res = subprocess.run([*VFS, "mount", str(src), str(mnt)], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert f"fusermount3 -u {mnt}" in res.stderr
    assert in_mount_table(mnt)  # stale: the kernel still lists it...
    assert wait_for(lambda: not os.path.ismount(mnt))  # ...once its cached attributes expire, stat fails
    unmount(mnt)  # what the harness does after every test: a stale mount is cleared too
    assert not in_mount_table(mnt)


def test_five_thousand_files_with_find_and_cat(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5000):
        with h5py.File(src / f"f{i:04d}.h5", "w") as f:
            f["v"] = np.array([i, i + 1])
    with mounted(src, tmp_path / "m") as mnt:
        found = subprocess.run(["find", str(mnt), "-name", "v.txt"], capture_output=True, text=True,
                               check=True, timeout=600).stdout.split()
        assert len(found) == 5000
        out = subprocess.run(f"find {mnt} -name v.txt -print0 | xargs -0 cat", shell=True, capture_output=True,
                             text=True, check=True, timeout=600).stdout.split()
        values = sorted(int(v) for v in out)
        assert values == sorted([i for i in range(5000)] + [i + 1 for i in range(5000)])
        pid = int(subprocess.run(["pgrep", "-f", f"vfs mount {src}"], capture_output=True, text=True).stdout.split()[0])
        open_fds = len(os.listdir(f"/proc/{pid}/fd"))
        assert open_fds < 300, f"{open_fds} descriptors open: the HDF5 file pool is not bounded"


def test_files_that_change_under_the_mount(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with h5py.File(src / "live.h5", "w") as f:
        f["a"] = np.arange(3)
    with mounted(src, tmp_path / "m") as mnt:
        assert np.load(mnt / "live.h5" / "a.npy").tolist() == [0, 1, 2]
        with h5py.File(src / "live.h5", "a") as f:
            f["b"] = np.arange(5)
        assert wait_for(lambda: (mnt / "live.h5" / "b.npy").exists(), 10)
        assert np.load(mnt / "live.h5" / "b.npy").tolist() == list(range(5))
        (src / "new.h5").write_bytes((src / "live.h5").read_bytes())
        assert wait_for(lambda: (mnt / "new.h5" / "b.npy").exists(), 10)
        # replaced the way programs replace files (write elsewhere, rename over it)
        (src / "tmp").write_bytes(b"not hdf5 any more")
        os.replace(src / "tmp", src / "live.h5")
        assert wait_for(lambda: (mnt / "live.h5").is_file(), 10)
        assert (mnt / "live.h5").read_bytes() == b"not hdf5 any more"
        # truncated in place: no stale data, no crash; the folder empties
        with open(src / "new.h5", "r+b") as fh:
            fh.truncate(100)
        assert wait_for(lambda: not (mnt / "new.h5" / "b.npy").exists(), 10)
        assert "new.h5" in os.listdir(mnt)


def test_background_mount_logs_to_a_default_file(tmp_path):
    """Without --log-file a background mount logs to a file under $XDG_STATE_HOME/vfs,
    named in what ``vfs mount`` prints; lines written long after the start land there."""
    require_fuse()
    src, mnt, state = tmp_path / "src", tmp_path / "mnt", tmp_path / "state"
    src.mkdir()
    mnt.mkdir()
    (src / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\xff" * 600)  # HDF5 signature, no file
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    try:
        res = subprocess.run([*VFS, "mount", str(src), str(mnt)], env=env, capture_output=True, text=True,
                             check=True, timeout=60)
        log = Path(res.stdout.split("log file ", 1)[1].strip())
        assert log.parent == state / "vfs" and log.name.startswith("mnt-")
        assert (mnt / "broken.h5").is_file()  # shown as itself; the reason goes to the log
        assert wait_for(lambda: "broken.h5: looks like hdf5" in log.read_text())
    finally:
        unmount(mnt)
