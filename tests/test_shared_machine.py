"""A mount shared with other users (``-o allow_other``): a second uid reads through the
mount exactly what it could read in SOURCE. The oracle is the same command run by the
same user on the source file itself."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.mounting import missing, mounted, require_fuse

pytestmark = pytest.mark.mount

NOBODY = 65534
OTHER_GROUP = 4242  # a group the reading user is put in, that owns grouponly.h5


def require_root() -> None:
    """Switching to another uid needs root; in CI (root) this must not be skipped."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        missing("acting as a second user needs root and setpriv (util-linux)")


def as_user(cmd: list[str], gid: int = NOBODY) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` as uid nobody with primary group ``gid`` and no other groups."""
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={gid}", "--clear-groups", *cmd],
                          capture_output=True, text=True, errors="replace", timeout=60)


SPEC = "#F scans.spec\n#E 1700000000\n\n#S 1 ascan\n#N 2\n#L a  b\n1 2\n3 4\n"


def h5(path: Path, mode: int, gid: int = 0) -> None:
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(6, dtype="<i4")
    os.chown(path, 0, gid)
    path.chmod(mode)


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[Path, Path]]:
    """SOURCE with files of several modes, mounted with allow_other in folders that
    other users may traverse (pytest's tmp_path is private to root)."""
    require_fuse()
    require_root()
    top = Path(tempfile.mkdtemp(prefix="vfs-shared-"))
    try:
        top.chmod(0o755)
        src, mnt = top / "src", top / "mnt"
        src.mkdir(mode=0o755)
        mnt.mkdir(mode=0o755)
        src.chmod(0o755)
        h5(src / "public.h5", 0o644)
        h5(src / "secret.h5", 0o600)
        h5(src / "grouponly.h5", 0o640, OTHER_GROUP)
        (src / "private").mkdir()
        h5(src / "private" / "inner.h5", 0o644)
        (src / "private").chmod(0o700)
        for name, mode in [("open.spec", 0o644), ("secret.spec", 0o600)]:
            (src / name).write_text(SPEC)
            (src / name).chmod(mode)
        (src / "notes.txt").write_text("open\n")
        (src / "notes.txt").chmod(0o644)
        (src / "hidden.txt").write_text("closed\n")
        (src / "hidden.txt").chmod(0o600)
        with mounted(src, mnt, "-o", "allow_other", log_file=top / "vfs.log"):
            yield src, mnt
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("gid", [NOBODY, OTHER_GROUP])
@pytest.mark.parametrize("name", ["public.h5", "secret.h5", "grouponly.h5", "private/inner.h5"])
def test_other_user_reads_a_data_file_as_in_source(shared, name, gid):
    src, mnt = shared
    in_source = as_user(["cat", str(src / name)], gid)
    npy = as_user(["cat", str(mnt / name / "x.npy")], gid)
    txt = as_user(["cat", str(mnt / name / "x.txt")], gid)
    listing = as_user(["ls", str(mnt / name)], gid)
    assert (npy.returncode == 0) == (in_source.returncode == 0), (name, gid, npy.stderr)
    assert (txt.returncode == 0) == (in_source.returncode == 0), (name, gid, txt.stderr)
    assert (listing.returncode == 0) == (in_source.returncode == 0), (name, gid, listing.stderr)
    if in_source.returncode == 0:
        assert txt.stdout.split() == [str(v) for v in range(6)]
    else:
        assert "Permission denied" in npy.stderr


def test_expected_outcomes_per_user(shared):
    """The oracle above is only meaningful if both outcomes occur."""
    src, mnt = shared
    assert as_user(["cat", str(mnt / "public.h5" / "x.npy")]).returncode == 0
    assert as_user(["cat", str(mnt / "secret.h5" / "x.npy")]).returncode != 0
    assert as_user(["cat", str(mnt / "grouponly.h5" / "x.npy")]).returncode != 0
    assert as_user(["cat", str(mnt / "grouponly.h5" / "x.npy")], OTHER_GROUP).returncode == 0


@pytest.mark.parametrize("name", ["private", "notes.txt", "hidden.txt"])
def test_other_user_and_passthrough_entries(shared, name):
    src, mnt = shared
    cmd = ["ls"] if (src / name).is_dir() else ["cat"]
    in_source = as_user([*cmd, str(src / name)])
    in_mount = as_user([*cmd, str(mnt / name)])
    assert in_mount.returncode == in_source.returncode, (name, in_mount.stderr)
    assert in_mount.stdout == in_source.stdout


def test_modes_and_owners_shown(shared):
    src, mnt = shared
    group = (mnt / "grouponly.h5").stat()
    assert (group.st_uid, group.st_gid) == (0, OTHER_GROUP)
    assert stat.S_IMODE(group.st_mode) == 0o550  # r -> r-x for the folder of a data file
    assert stat.S_IMODE((mnt / "grouponly.h5" / "x.npy").stat().st_mode) == 0o440
    assert stat.S_IMODE((mnt / "secret.h5").stat().st_mode) == 0o500
    assert stat.S_IMODE((mnt / "secret.h5" / "x.npy").stat().st_mode) == 0o400
    assert stat.S_IMODE((mnt / "private").stat().st_mode) == 0o500  # own bits, write removed
    assert stat.S_IMODE((mnt / "notes.txt").stat().st_mode) == 0o444
    (src / "notes.txt").chmod(0o600)  # a chmod in SOURCE shows within the attribute timeout
    try:
        deadline = 30
        while stat.S_IMODE((mnt / "notes.txt").stat().st_mode) != 0o400 and deadline:
            deadline -= 1
            subprocess.run(["sleep", "0.2"])
        assert stat.S_IMODE((mnt / "notes.txt").stat().st_mode) == 0o400
        assert as_user(["cat", str(mnt / "notes.txt")]).returncode != 0
    finally:
        (src / "notes.txt").chmod(0o644)


@pytest.mark.parametrize("name", ["open.spec", "secret.spec"])
def test_other_user_and_spec_files(shared, name):
    src, mnt = shared
    in_source = as_user(["cat", str(src / name)])
    column = as_user(["cat", str(mnt / name / "1.1" / "measurement" / "b.txt")])
    assert column.returncode == in_source.returncode, column.stderr
    if in_source.returncode == 0:
        assert [float(v) for v in column.stdout.split()] == [2.0, 4.0]


def test_chmod_of_a_data_file_shows(shared):
    """A data file made private in SOURCE is closed to other users within seconds."""
    src, mnt = shared
    assert as_user(["cat", str(mnt / "public.h5" / "x.txt")]).returncode == 0
    (src / "public.h5").chmod(0o600)
    try:
        for _ in range(50):
            if stat.S_IMODE((mnt / "public.h5").stat().st_mode) == 0o500:
                break
            subprocess.run(["sleep", "0.1"])
        assert stat.S_IMODE((mnt / "public.h5").stat().st_mode) == 0o500
        subprocess.run(["sleep", "1.1"])  # the kernel's attribute cache of the files inside
        assert as_user(["cat", str(mnt / "public.h5" / "x.txt")]).returncode != 0
        assert as_user(["ls", str(mnt / "public.h5")]).returncode != 0
    finally:
        (src / "public.h5").chmod(0o644)
    assert stat.S_IMODE((mnt / ".vfs-stats").stat().st_mode) == 0o444
