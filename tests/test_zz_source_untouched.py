"""Runs last (file name order): after the whole suite has mounted and read the real
data, every source file is byte-identical with an unchanged mtime."""

from __future__ import annotations

from tests.conftest import REAL, SNAPSHOT, snapshot


def test_real_sources_unchanged_after_the_suite(real_data):
    assert SNAPSHOT, "the snapshot taken at session start is empty"
    after = snapshot(REAL)
    changed = [path for path, value in SNAPSHOT.items() if after.get(path) != value]
    assert not changed, f"source files changed: {changed[:5]}"
    assert set(after) == set(SNAPSHOT), "files appeared or vanished in the source folder"
