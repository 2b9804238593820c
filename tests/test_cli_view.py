"""``vfs ls|cat|cp|tree|info`` through subprocesses, on a machine without FUSE (the
binding's import is made to fail and the library name points nowhere), plus awk reading
the text renderings through a real mount and ``vfs info`` on a path inside a mount."""

from __future__ import annotations

import io
from typing import Any
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.mounting import mounted
from tests.viewdata import SMALL, write_source


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_source(tmp_path_factory.mktemp("cli_src"))


@pytest.fixture(scope="module")
def no_fuse_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment where importing the FUSE binding fails, as without libfuse."""
    fake = tmp_path_factory.mktemp("no_fuse")
    (fake / "mfusepy.py").write_text("raise OSError('Unable to find libfuse')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(fake), str(Path(__file__).resolve().parents[1])])
    env["FUSE_LIBRARY_NAME"] = str(fake / "libfuse-absent.so")
    return env


def vfs(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([sys.executable, "-m", "vfs", *args], env=env, capture_output=True, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr.decode()
    return proc


def h5(source: Path, name: str) -> np.ndarray:
    with h5py.File(source / "scan.h5", "r", locking=False) as f:
        return f[name][()]


def test_commands_work_without_fuse(source: Path, no_fuse_env: dict[str, str], tmp_path: Path) -> None:
    env = no_fuse_env
    mount = vfs(env, "mount", str(source), str(tmp_path), "-f", ok=False)  # really no FUSE here
    assert mount.returncode == 2 and mount.stderr.decode().startswith("vfs: FUSE is not available here")
    listing = vfs(env, "ls", str(source / "scan.h5/entry")).stdout.decode().split("\n")
    assert listing[:-1] == ["counts.npy", "counts.txt", "ext", "here", "image.npy", "image.txt", "image.edf", "image.png",
                            "link.npy", "link.txt", "small.npy", "small.txt", "title.txt"]
    long = vfs(env, "ls", "-l", str(source / "scan.h5/entry")).stdout.decode()
    assert "lrwxrwxrwx" in long and "link.npy -> small.npy" in long
    assert f"-r--r--r-- {400 * 400 * 16:>12}" in long  # image.txt: fixed width
    text = vfs(env, "cat", str(source / "scan.h5/entry/small.txt")).stdout
    assert text.decode() == "".join({"nan": "+nan", "inf": "+inf"}.get(repr(v), repr(v)) + "\n"
                                    for v in SMALL.tolist())
    assert vfs(env, "cat", str(source / "run.spec/1.1/measurement/th.txt")).stdout == b"0.99\n2.5\n0.1\n"
    vfs(env, "cp", str(source / "scan.h5/entry/image.npy"), str(tmp_path))
    np.testing.assert_array_equal(np.load(tmp_path / "image.npy"), h5(source, "/entry/image"))
    vfs(env, "cp", str(source / "scan.h5/entry/link.npy"), str(tmp_path))  # a link: its own name, target's bytes
    np.testing.assert_array_equal(np.load(tmp_path / "link.npy"), SMALL)
    vfs(env, "cp", "-r", str(source / "run.spec/1.1"), str(tmp_path / "scan1"))
    assert (tmp_path / "scan1/measurement/I0.txt").read_bytes() == b"7.0\n8.0\n9.0\n"
    tree = vfs(env, "tree", "-L", "2", str(source / "run.spec")).stdout.decode()
    assert "└── 1.1" in tree and "    ├── measurement" in tree and "Monitor.txt" not in tree  # depth 2 only
    info = vfs(env, "info", str(source / "scan.h5/entry/image.npy")).stdout.decode()
    for fact in (f"source file: {source / 'scan.h5'}", "object:      /entry/image", "dtype:       float32",
                 "shape:       (400, 400)", "chunks:      (50, 400)", "shuffle", "deflate"):
        assert fact in info, info


def test_errors_are_one_line(source: Path, no_fuse_env: dict[str, str]) -> None:
    for args, words in [(["cat", str(source / "scan.h5/entry/nothing.txt")], "No such file or directory"),
                        (["cat", str(source / "scan.h5/entry")], "is a folder"),
                        (["ls", str(source / "scan.h5/entry/small.npy/x")], "Not a directory"),
                        (["cat", str(source / "cut.edf/data.npy")], "truncated")]:
        proc = vfs(no_fuse_env, *args, ok=False)
        err = proc.stderr.decode()
        assert proc.returncode == 1 and err.count("\n") == 1 and words in err, err


def test_help_shows_examples(no_fuse_env: dict[str, str]) -> None:
    out = vfs(no_fuse_env, "cat", "--help").stdout.decode()
    assert "examples:" in out and "vfs cat /data/run7/scan.h5/entry/title.txt" in out


@pytest.fixture(scope="module")
def mnt(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with mounted(source, tmp_path_factory.mktemp("cli_mnt") / "mnt") as path:
        yield path


def awk_values(path: Path) -> np.ndarray:
    awk = shutil.which("gawk") or shutil.which("awk")
    if awk is None:
        pytest.fail("awk is missing (Debian package gawk)")
    out = subprocess.run([awk, '{ for (i = 1; i <= NF; i++) printf "%.17g\\n", $i }', str(path)],
                         capture_output=True, check=True).stdout
    return np.loadtxt(io.BytesIO(out))


def gnuplot_values(path: Path) -> np.ndarray:
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        pytest.fail("gnuplot is missing (Debian package gnuplot-nox)")
    script = f"set table '/dev/stdout'; plot '{path}' using (sprintf('%.17g', $1)) with table"
    out = subprocess.run([gnuplot, "-e", script], capture_output=True, check=True).stdout
    return np.loadtxt(io.BytesIO(out))


@pytest.mark.parametrize("reader", [awk_values, gnuplot_values], ids=["awk", "gnuplot"])
def test_awk_and_gnuplot_read_every_value_exactly(source: Path, mnt: Path, reader: Any) -> None:
    if reader is awk_values:  # gnuplot reads the first column; the image has many
        image = h5(source, "/entry/image")
        np.testing.assert_array_equal(reader(mnt / "scan.h5/entry/image.txt").astype(np.float32), image.reshape(-1))
    small = reader(mnt / "scan.h5/entry/small.txt")
    np.testing.assert_array_equal(small, SMALL)
    np.testing.assert_array_equal(reader(mnt / "run.spec/1.1/measurement/Monitor.txt"),
                                  [1.595026e-13, -3.25e+21, 1e-05])


def test_info_inside_a_mount(source: Path, mnt: Path) -> None:
    env = dict(os.environ)
    proc = vfs(env, "info", str(mnt / "scan.h5/entry/image.txt"))
    info = proc.stdout.decode()
    assert f"source file: {source / 'scan.h5'}" in info and "fixed width: 16 bytes per value" in info, info
    assert vfs(env, "cat", str(mnt / "scan.h5/entry/title.txt")).stdout == b"my scan\n"


def test_progress_bar_only_on_a_terminal() -> None:
    from vfs.cli_view import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown, hidden = Terminal(), io.StringIO()
    for stream in (shown, hidden):
        bar = Progress("vfs: big.npy", 100 << 20, stream)
        bar.last -= 1  # as if the last redraw were a second ago
        bar.update(50 << 20)
        bar.close()
    assert "vfs: big.npy [###############               ]  50%" in shown.getvalue()
    assert hidden.getvalue() == ""
