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

__all__ = ["fuse_problem", "memory_kib", "missing", "mount_pid", "mounted", "require_fuse", "require_module", "stats",
           "stop", "unmount"]


def require_fuse() -> None:
    problem = fuse_problem()
    if problem is not None:
        missing(f"FUSE is required: {problem}")


def missing(problem: str) -> None:
    """Skip for ``problem`` on a workstation; fail under ``CI=true``, where everything a
    test needs (FUSE, test oracles, the real data folder) must be present."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem} (CI=true: missing test requirements fail the run)")
    pytest.skip(problem, allow_module_level=True)


def require_module(name: str) -> Any:
    """Import a test oracle (silx, PyMca, fabio...): skipped if absent, failed in CI."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"test oracle {name} is not installed ({exc})")


@contextlib.contextmanager
def mounted(source: Path | str, mountpoint: Path, *extra: str, timeout: float = 30.0,
            log_file: Path | None = None, data_limit: int | None = None) -> Iterator[Path]:
    """Mount ``source`` at ``mountpoint`` for the duration of the ``with`` block (skips,
    or fails in CI, without FUSE); ``data_limit``: see :func:`vfs.harness.mounted`."""
    require_fuse()
    with harness.mounted(source, mountpoint, *extra, timeout=timeout, log_file=log_file,
                         data_limit=data_limit) as mnt:
        yield mnt
