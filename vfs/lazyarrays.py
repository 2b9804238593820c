"""An array source known by its shape and dtype, built when its data are first read.

Listing a folder needs each array's names and sizes, which shape and dtype give
(``ls -l`` of 1,000 HDF5 datasets must not build 1,000 sources: finding a dataset's
layout, offsets and filters costs more than reading its shape). A :class:`LazySource`
carries shape, dtype, label and attributes, and makes the real source (``build``) on the
first read; every read, and any attribute the real source has (``chunks``, ``cache``,
...), is then served by it. A source built with another shape or dtype (the file changed
between listing and reading) is refused: the read gets EIO.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vfs.arrays import ArraySource
from vfs.errors import Unreadable
from vfs.logutil import log_once
from vfs.selection import Index


class LazySource(ArraySource):
    """Shape, dtype, label and attributes now; the source that reads, on first use.

    ``lock`` is held while building: a backend whose ``build`` takes a library lock
    passes that (re-entrant) lock, so building never waits for two locks at once.
    """

    def __init__(
        self,
        shape: Index,
        dtype: np.dtype[Any],
        label: str,
        build: Callable[[], ArraySource],
        attrs: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
        lock: Any = None,
    ) -> None:
        # ArraySource.__init__ without its per-axis checks: this runs once per listed array
        self.shape, self.dtype, self.label, self._attrs = tuple(shape), np.dtype(dtype), label, attrs
        self._build: Callable[[], ArraySource] | None = build
        self._lock = lock if lock is not None else threading.RLock()
        self._source: ArraySource | None = None

    @property
    def source(self) -> ArraySource:
        """The real source (built now if it was not yet)."""
        if self._source is None:
            with self._lock:
                if self._source is None and self._build is not None:
                    made = self._build()
                    if made.shape != self.shape or made.dtype != self.dtype:
                        message = (f"{self.label}: changed since it was listed "
                                   f"({self.shape} {self.dtype}, now {made.shape} {made.dtype})")
                        log_once(message, message)
                        raise Unreadable(message)
                    self._source, self._build = made, None
        assert self._source is not None
        return self._source

    @property  # type: ignore[override]
    def chunks(self) -> Index:
        return self.source.chunks

    @chunks.setter
    def chunks(self, value: Index) -> None:
        raise AttributeError("the chunks of a lazy source are its built source's")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not found during construction or copying: not the source's
            raise AttributeError(name)
        return getattr(self.source, name)

    def fill_box(self, start: Index, extent: Index, out: np.ndarray) -> None:
        self.source.fill_box(start, extent, out)

    def read_flat(self, a: int, b: int, out: np.ndarray | None = None) -> np.ndarray:
        return self.source.read_flat(a, b, out)

    def read_bytes(self, p: int, q: int) -> bytes:
        return self.source.read_bytes(p, q)

    def read_view(self, p: int, q: int) -> np.ndarray | bytes:
        return self.source.read_view(p, q)
