"""Virtual files made from renderings, and the one place that decides which renderings
an array gets: ``name.npy``, ``name.txt`` and, for images, ``name.edf`` and the preview
``name.png``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from vfs.arrays import ArraySource
from vfs.errors import Unreadable
from vfs.logutil import log_once
from vfs.nodes import Entries, File, XattrLoader, make_ino
from vfs.render import Rendering
from vfs.render.edf import EdfRendering, edf_type
from vfs.cache import ChunkCache
from vfs.render.npy import NpyRendering, npy_supported
from vfs.render.png import PngRendering, png_supported
from vfs.render.txt import TxtRendering, txt_supported

RENDERINGS: dict[str, Callable[[ArraySource], Rendering]] = {
    "npy": NpyRendering,
    "txt": TxtRendering,
    "edf": EdfRendering,
    "png": PngRendering,
}


class RenderedFile(File):
    """A virtual file whose bytes a rendering computes on demand.

    ``rendering`` is the rendering, or a function that makes it: then it is made on
    first use (``frames/`` of an EDF stack may list 60,000 files, most never opened).
    Renderings are plain objects, never callable, so the two cannot be confused.
    ``guard`` runs at each open and may refuse it by raising (bytes outside SOURCE).
    """

    def __init__(self, ino: int, mtime_ns: int, rendering: Rendering | Callable[[], Rendering],
                 xattrs: XattrLoader | None = None, guard: Callable[[], None] | None = None) -> None:
        super().__init__(ino, mtime_ns, xattrs)
        self.guard = guard
        if callable(rendering):
            self._make = rendering
        else:
            self.rendering = rendering

    @functools.cached_property
    def rendering(self) -> Rendering:
        return self._make()

    def open(self) -> None:
        if self.guard is not None:
            self.guard()

    @property
    def size(self) -> int:
        return self.rendering.size

    @property
    def size_ready(self) -> bool:
        if "rendering" not in self.__dict__:  # not made yet (functools.cached_property keeps it there)
            return False
        return bool(getattr(self.rendering, "size_ready", True))  # a short .txt: once its text is made

    def read(self, offset: int, size: int) -> bytes:
        return self.rendering.read(offset, size)

    def read_buffer(self, offset: int, size: int) -> object:
        fn = getattr(self.rendering, "read_buffer", None)
        return fn(offset, size) if fn is not None else self.rendering.read(offset, size)

    def read_into(self, offset: int, dest: np.ndarray) -> int | None:
        fn = getattr(self.rendering, "read_into", None)
        return fn(offset, dest) if fn is not None else None  # type: ignore[no-any-return]


class BrokenFile(File):
    """A listed entry whose data cannot be served: size 0, and open gives EIO.

    The reason is logged once, the first time someone opens it.
    """

    def __init__(self, ino: int, mtime_ns: int, reason: str, xattrs: XattrLoader | None = None) -> None:
        super().__init__(ino, mtime_ns, xattrs)
        self.reason = reason

    @property
    def size(self) -> int:
        return 0

    def open(self) -> None:
        log_once(self.reason, self.reason)
        raise Unreadable(self.reason)

    def read(self, offset: int, size: int) -> bytes:
        self.open()
        return b""


def renderings_for(source: ArraySource) -> list[str]:
    """The suffixes this array gets, in listing order."""
    return suffixes_for(source.shape, source.dtype)


def suffixes_for(shape: tuple[int, ...], dtype: np.dtype[Any]) -> list[str]:
    """The suffixes an array of this shape and dtype gets (no source needed)."""
    out = list(_suffixes(min(len(shape), 2), dtype))
    if png_supported(shape, dtype):
        out.append("png")
    return out


@functools.lru_cache(maxsize=1024)
def _suffixes(ndim: int, dtype: np.dtype[Any]) -> tuple[str, ...]:
    """Memoised by rank (0, 1, 2 or more) and dtype: ``frames/`` asks for every frame."""
    out = []
    if npy_supported(dtype):
        out.append("npy")
    if txt_supported(dtype):
        out.append("txt")
    if ndim >= 2 and edf_type(dtype) is not None:
        out.append("edf")
    return tuple(out)


def add_array_files(
    entries: Entries,
    stem: str,
    source: ArraySource,
    identity: tuple[object, ...],
    mtime_ns: int,
    xattrs: XattrLoader | None = None,
    suffixes: list[str] | None = None,
    cache: ChunkCache | None = None,
    interpretation: str | None = None,
    guard: Callable[[], None] | None = None,
) -> list[str]:
    """Add ``stem.npy``/``stem.txt``/``stem.edf``/``stem.png`` for ``source``; return the
    names used. ``cache`` keeps drawn previews (the mount's chunk cache);
    ``interpretation`` (``spectrum``: an XRF cube, spectra on the last axis; ``image``:
    a stack of frames) is what the format says a 3-D array is, for its preview. ``guard``
    runs when one of the files is opened and may refuse it by raising (data whose bytes
    lie outside SOURCE, say)."""
    names = []
    for suffix in suffixes if suffixes is not None else renderings_for(source):
        rendering = (PngRendering(source, cache, interpretation) if suffix == "png"
                     else RENDERINGS[suffix](source))
        node = RenderedFile(make_ino(*identity, suffix), mtime_ns, rendering, xattrs, guard)
        names.append(entries.add(f"{stem}.{suffix}", node))
    return names
