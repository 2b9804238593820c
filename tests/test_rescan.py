"""Incremental rescans (vfs/rescan.py) without a mount: only new, replaced and changed
pending entries are built again; every other node is kept as the same object; the
result is the folder's names in sorted order (checked against ``sorted(os.listdir)``)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

from tests.live_writers import edf_bytes

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


def test_listing_through_the_mount_follows_each_snapshot(tmp_path: Path, mount: Any) -> None:
    """``readdir`` through a real mount (served from a listing kept per snapshot): names
    in order, each entry's type and inode number as ``lstat`` of that path gives them
    (a different request: getattr), and a listing taken again after a file was added
    shows it: the kept listing is not served past its snapshot."""
    src = tmp_path / "src" / "run"
    (src / "sub").mkdir(parents=True)
    (src / "frame_0001.edf").write_bytes(edf_bytes(1, (8, 8)))
    (src / "notes.txt").write_bytes(b"plain text, not data\n" * 300)
    (src / "link").symlink_to("notes.txt")
    with mount(tmp_path / "src") as mnt:
        folder = mnt / "run"

        def check() -> list[str]:
            entries = list(os.scandir(folder))
            names = [e.name for e in entries]
            assert names == sorted(os.listdir(src))
            for e in entries:
                st = os.lstat(e.path)
                assert e.inode() == st.st_ino, e.name
                assert (e.is_dir(follow_symlinks=False), e.is_symlink()) == (
                    stat.S_ISDIR(st.st_mode), stat.S_ISLNK(st.st_mode)), e.name
            return names

        assert check() == check() == ["frame_0001.edf", "link", "notes.txt", "sub"]
        assert (folder / "frame_0001.edf").is_dir() and not (src / "frame_0001.edf").is_dir()
        (src / "frame_0002.edf").write_bytes(edf_bytes(2, (8, 8)))
        end = time.monotonic() + 10
        while "frame_0002.edf" not in os.listdir(folder) and time.monotonic() < end:
            time.sleep(0.02)
        assert check() == ["frame_0001.edf", "frame_0002.edf", "link", "notes.txt", "sub"]
        assert (folder / "frame_0002.edf").is_dir()


def test_source_folders_are_dropped_under_the_node_bound_and_listed_again_without_opening_files(
        tmp_path: Path, monkeypatch: Any) -> None:
    """Past the bound on built nodes a source folder's listing is dropped like any folder's
    (weighted by its entries); listed again it shows the same names and inode numbers,
    and takes each file's kind from the memo instead of opening it again."""
    from vfs import nodes, probing
    from vfs.rescan import listing_weight
    from vfs.view import View

    budget = listing_weight(60) + 20
    monkeypatch.setattr(nodes, "LIVE", nodes.LiveFolders(budget=budget))
    monkeypatch.setattr(probing, "KINDS", probing.KindMemo())
    monkeypatch.setattr("vfs.tree.KINDS", probing.KINDS)
    (tmp_path / "big").mkdir()
    for i in range(60):
        (tmp_path / "big" / f"f{i:02d}.txt").write_bytes(b"plain text, not data\n" * 200)
    (tmp_path / "big" / "scan.edf").write_bytes(edf_bytes(7, (8, 8)))
    (tmp_path / "other").mkdir()
    for i in range(3):
        (tmp_path / "other" / f"frame_{i}.edf").write_bytes(edf_bytes(i, (8, 8)))
    view = View(tmp_path)
    big = view.entries("big")
    inos = {name: view.stat(f"big/{name}").ino for name in big}
    view.listdir("other")
    sniffs = probing.KINDS.sniffs
    for i in range(3):  # each data file's folder is a build: the total passes the bound
        assert view.listdir(f"other/frame_{i}.edf")
    assert nodes.LIVE.total <= budget  # the bound holds ...
    assert view.root.inner.child("big")._children is None  # type: ignore[attr-defined]  # ... by dropping big
    again = view.entries("big")
    assert again is not big
    assert list(again) == sorted(os.listdir(tmp_path / "big"))
    assert {name: view.stat(f"big/{name}").ino for name in again} == inos
    assert probing.KINDS.sniffs == sniffs  # no file of big was opened again
    assert view.listdir("big/scan.edf")  # still a data file's folder
