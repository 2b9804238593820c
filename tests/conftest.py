"""Shared fixtures: real data location, a mount factory that always unmounts, and a
snapshot of every source file taken before the suite (checked by the last test)."""

from __future__ import annotations

import contextlib
import hashlib

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.mounting import missing, mounted

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
SNAPSHOT: dict[str, tuple[str, int]] = {}


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime_ns of every file under ``root``."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path)] = (digest, path.stat().st_mtime_ns)
    return out


def pytest_sessionstart(session: pytest.Session) -> None:
    if REAL.is_dir():
        SNAPSHOT.update(snapshot(REAL))


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL.is_dir():
        missing(f"real data folder {REAL} not present")
    return REAL


MountFactory = Callable[..., contextlib.AbstractContextManager[Path]]


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[MountFactory]:
    """``with mount(source, *options) as mnt:`` mounts in a fresh folder under tmp_path."""
    stack = contextlib.ExitStack()
    counter = iter(range(1000))

    def factory(source: Path | str, *extra: str, data_limit: int | None = None) -> contextlib.AbstractContextManager[Path]:
        mnt = tmp_path / f"mnt{next(counter)}"
        return mounted(source, mnt, *extra, data_limit=data_limit)

    with stack:
        yield factory


