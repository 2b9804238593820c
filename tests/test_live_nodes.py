"""The bound on built nodes (vfs.nodes.LIVE) and on computed texts (vfs.nodes.TEXTS)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pytest

from vfs import nodes
from vfs.nodes import BytesFile, Directory, LiveFolders, Node, make_ino


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveFolders]:
    table = LiveFolders(budget=250)
    monkeypatch.setattr(nodes, "LIVE", table)
    yield table


def folder(name: str, width: int, builds: list[str]) -> Directory:
    """A folder of ``width`` files, counting its builds in ``builds``."""
    def load() -> Mapping[str, Node]:
        builds.append(name)
        return {f"f{i}": BytesFile(make_ino(name, i), 0, f"{name}/{i}\n".encode()) for i in range(width)}
    return Directory(make_ino(name), 0, load)


def test_least_recently_used_folders_drop_and_rebuild_the_same(live: LiveFolders) -> None:
    builds: list[str] = []
    folders = [folder(f"d{k}", 100, builds) for k in range(4)]
    inos = [{n: c.ino for n, c in d.children().items()} for d in folders[:2]]
    folders[0].children()  # d0 used again: d1 is now the oldest
    folders[2].children()  # 300 nodes > 250: d1 goes
    assert live.total == 200 and live.drops == 1
    assert folders[1]._children is None and folders[0]._children is not None
    folders[3].children()  # d0 goes next
    assert folders[0]._children is None and live.total == 200
    rebuilt = {n: c.ino for n, c in folders[1].children().items()}
    assert rebuilt == inos[1]
    assert folders[1].child("f7").read(0, 100) == b"d1/7\n"  # type: ignore[attr-defined]
    assert builds == ["d0", "d1", "d2", "d3", "d1"]


def test_a_build_nested_in_another_weighs_for_its_own_folder(live: LiveFolders) -> None:
    builds: list[str] = []
    inner = folder("inner", 50, builds)

    def load() -> Mapping[str, Node]:
        inner.children()  # built while the outer folder builds
        return {"x": BytesFile(make_ino("x"), 0, b"x"), "inner": inner}

    outer = Directory(make_ino("outer"), 0, load)
    outer.children()
    assert live.total == 51 and len(live) == 2  # 50 for inner, 1 for outer (x: inner was made before)


def test_large_texts_are_kept_under_one_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from cachetools import LRUCache

    monkeypatch.setattr(nodes, "TEXTS", LRUCache(maxsize=10_000, getsizeof=len))
    made: list[int] = []

    def text(i: int) -> BytesFile:
        return BytesFile(make_ino("t", i), 0, lambda: made.append(i) or bytes([65 + i]) * 4000)

    files = [text(i) for i in range(3)]
    assert [f.size for f in files] == [4000] * 3  # the third evicts the first (12,000 > 10,000)
    assert files[0].read(0, 2) == b"AA" and made == [0, 1, 2, 0]  # computed again once evicted
    assert files[2].size == 4000 and made == [0, 1, 2, 0]  # the size is kept: no recomputation
    assert nodes.TEXTS.currsize <= 10_000



def test_folders_on_the_walked_path_are_kept_while_a_build_below_them_passes_the_bound(
        live: LiveFolders) -> None:
    """A folder larger than the whole budget (a source folder of many files) is not
    dropped each time a sub-folder of it is built: the walk's path is kept; the other
    folders still go, least recently used first."""
    builds: list[str] = []
    subs = {f"s{k}": folder(f"s{k}", 100, builds) for k in range(3)}

    def load() -> Mapping[str, Node]:
        builds.append("big")
        return {**{f"f{i}": BytesFile(make_ino("big", i), 0, b"x") for i in range(300)}, **subs}

    big = Directory(make_ino("big"), 0, load)
    root = Directory(make_ino("root"), 0, lambda: {"big": big})
    for k in range(3):
        assert nodes.walk(root, ["big", f"s{k}", "f1"]).read(0, 10) == f"s{k}/1\n".encode()  # type: ignore[attr-defined]
    assert builds == ["big", "s0", "s1", "s2"]  # big was built once
    assert subs["s0"]._children is None and subs["s1"]._children is None  # the others were dropped
    assert live.total == 300 + 100  # big (its 300 files; its folders were made before), s2


def test_an_image_files_frame_index_and_metadata_weigh_with_its_folder(
        live: LiveFolders, tmp_path: pytest.TempPathFactory) -> None:
    """What an opened EDF stack holds besides nodes (its frame index, the per-frame motor
    values) is weighed with the file's folder: two stacks whose nodes alone fit the
    budget do not both stay once their metadata are built; dropped, one serves the same."""
    from pathlib import Path

    from tests.test_bounds import IMAGE, frame
    from vfs.view import View

    live.budget = 4000
    src = Path(str(tmp_path))
    names = " ".join(f"m{i}" for i in range(10))
    for f in ("a.edf", "b.edf"):
        (src / f).write_bytes(b"".join(frame(IMAGE, motor_mne=names, Image=k + 1,
                                             motor_pos=" ".join(str(k * 10 + i) for i in range(10)))
                                       for k in range(1000)))
    view = View(src)
    motors = "scan_0/instrument/positioners/m3.npy"
    first = view.read(f"a.edf/{motors}")
    folder_a = view.root.inner.child("a.edf")  # type: ignore[attr-defined]
    view.listdir("a.edf")  # a's metadata are weighed at its next look-up
    assert folder_a._inner is not None
    view.read(f"b.edf/{motors}")
    view.listdir("b.edf")  # b's index and metadata are weighed: a has to go
    assert folder_a._inner is None
    assert live.total <= live.budget
    assert view.read(f"a.edf/{motors}") == first
    assert np.load(view.open(f"a.edf/{motors}")).tolist() == [k * 10 + 3 for k in range(1000)]


def test_a_file_whose_index_and_frame_list_pass_the_bound_together_is_not_rebuilt_per_read(
        live: LiveFolders, tmp_path: pytest.TempPathFactory) -> None:
    """A single-file view of an EDF stack whose frame index and ``frames/`` list weigh
    more than the budget together: the folders a look-up uses (the file's folder, the
    folder it wraps, ``frames/``) are kept while it builds, so reads do not drop and
    rebuild them in turn."""
    from pathlib import Path

    from tests.test_bounds import IMAGE, frame
    from vfs.view import View

    live.budget = 5000
    path = Path(str(tmp_path)) / "stack.edf"
    path.write_bytes(b"".join(frame(IMAGE + k, Image=k + 1) for k in range(2000)))
    view = View(path)
    assert len(view.listdir("frames")) == 4 * 2000
    for k in range(3):  # what the file holds settles (its index, the metadata a frame's header makes)
        assert np.load(view.open(f"frames/{k:04d}.npy")).tolist() == (IMAGE + k).tolist()
    drops = live.drops
    for k in range(100, 2000, 400):
        assert np.load(view.open(f"frames/{k:04d}.npy")).tolist() == (IMAGE + k).tolist()
    assert live.drops == drops
