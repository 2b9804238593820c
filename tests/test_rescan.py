"""Incremental rescans (vfs/rescan.py) without a mount: only new, replaced and changed
pending entries are built again; every other node is kept as the same object; the
result is the folder's names in sorted order (checked against ``sorted(os.listdir)``)."""

from __future__ import annotations

import os
from pathlib import Path

from vfs.nodes import Node
from vfs.rescan import Listing, PendingFile, rescan


class Builder:
    """Counts what it builds: a PendingFile for names ending in .part, else a Node."""

    def __init__(self) -> None:
        self.built: list[str] = []

    def __call__(self, path: str, st: os.stat_result) -> Node:
        self.built.append(os.path.basename(path))
        return PendingFile(path, st) if path.endswith(".part") else Node(st.st_ino, st.st_mtime_ns)


def first_listing(folder: Path, build: Builder) -> Listing:
    names = sorted(os.listdir(folder))
    nodes = {n: build(str(folder / n), os.lstat(folder / n)) for n in names}
    return Listing.of(nodes, {n: os.lstat(folder / n).st_ino for n in names})


def test_only_changes_are_built(tmp_path: Path) -> None:
    for i in range(1000):
        (tmp_path / f"f_{i:04d}").write_bytes(b"x")
    build = Builder()
    old = first_listing(tmp_path, build)
    build.built.clear()
    assert rescan(str(tmp_path), old, build, full=True) is None  # nothing changed

    (tmp_path / "f_1000").write_bytes(b"new")  # appended in name order
    (tmp_path / "a_first").write_bytes(b"new")  # sorts before all
    os.unlink(tmp_path / "f_0500")
    (tmp_path / "tmp").write_bytes(b"replacement")
    os.replace(tmp_path / "tmp", tmp_path / "f_0007")  # same name, new inode
    new = rescan(str(tmp_path), old, build, full=True)
    assert new is not None
    assert sorted(build.built) == ["a_first", "f_0007", "f_1000"]
    assert list(new.nodes) == sorted(os.listdir(tmp_path))
    assert new.nodes["f_0008"] is old.nodes["f_0008"]
    assert new.nodes["f_0007"] is not old.nodes["f_0007"]

    for name in ("g_3", "g_1", "g_2"):  # after every name: appended, in name order
        (tmp_path / name).write_bytes(b"new")
    newer = rescan(str(tmp_path), new, build, full=True)
    assert newer is not None and list(newer.nodes) == sorted(os.listdir(tmp_path))


def test_pending_files_are_probed_again_when_they_change(tmp_path: Path) -> None:
    (tmp_path / "x.part").write_bytes(b"1")
    (tmp_path / "y.part").write_bytes(b"1")
    build = Builder()
    old = first_listing(tmp_path, build)
    assert old.pending == ("x.part", "y.part")
    build.built.clear()
    assert rescan(str(tmp_path), old, build, full=False) is None
    with open(tmp_path / "y.part", "ab") as fh:  # grows: the folder's mtime does not change
        fh.write(b"2")
    new = rescan(str(tmp_path), old, build, full=False)
    assert new is not None and build.built == ["y.part"]
    assert new.nodes["x.part"] is old.nodes["x.part"] and new.pending == ("x.part", "y.part")
