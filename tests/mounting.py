"""Test harness for real FUSE mounts (:mod:`vfs.harness`, shared with the benchmarks).

When ``CI=true`` a missing /dev/fuse, fusermount3 or libfuse3 fails the test run
instead of skipping.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vfs import harness
from vfs.harness import fuse_problem, memory_kib, mount_pid, stats, stop, unmount

__all__ = ["fuse_problem", "memory_kib", "mount_pid", "mounted", "require_fuse", "require_module", "stats", "stop",
           "unmount"]


def require_fuse() -> None:
    problem = fuse_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"FUSE is required in CI: {problem}")
    pytest.skip(problem)


def require_module(name: str) -> Any:
    """Import a test oracle (zarr, rsciio, ...): missing, it skips the test, or fails it
    when ``CI=true``."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"test oracle {name} is required in CI: {exc}")
        pytest.skip(f"test oracle {name} is not installed: {exc}")


@contextlib.contextmanager
def mounted(source: Path | str, mountpoint: Path, *extra: str, timeout: float = 30.0,
            log_file: Path | None = None, data_limit: int | None = None) -> Iterator[Path]:
    """Mount ``source`` at ``mountpoint`` for the duration of the ``with`` block (skips,
    or fails in CI, without FUSE); ``data_limit``: see :func:`vfs.harness.mounted`."""
    require_fuse()
    with harness.mounted(source, mountpoint, *extra, timeout=timeout, log_file=log_file,
                         data_limit=data_limit) as mnt:
        yield mnt
