"""What every backend shares while a mount is up: the chunk cache, options, the root."""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field

from vfs.cache import ChunkCache
from vfs.errors import OutsideSource
from vfs.logutil import log_once


@dataclass
class Context:
    """Mount-wide state handed to backends.

    ``root`` is the real path of SOURCE's folder (the folder containing SOURCE when
    SOURCE is a single file): links may point inside it and never outside.
    ``formats`` names the optional backends switched on with ``--formats``.
    ``allow_outside`` holds the real paths of folders outside SOURCE whose bytes a file
    may pull in (``--allow-outside``); nothing else outside SOURCE is ever read.
    """

    root: str
    cache: ChunkCache = field(default_factory=ChunkCache)
    formats: frozenset[str] = frozenset()
    max_open_files: int = 128
    recheck_seconds: float = 0.25
    mount_is_folder: bool = True
    allow_outside: tuple[str, ...] = ()
    #: SOURCE as given (absolute): shown in ``.vfs-stats`` so that ``vfs info`` on a path
    #: inside a mount finds where its bytes come from
    source: str = ""
    #: the last reads served (path, offset, size): shown in .vfs-stats for diagnosis
    recent_reads: deque[tuple[str, int, int]] = field(default_factory=lambda: deque(maxlen=64))

    def inside(self, path: str) -> bool:
        """Whether ``path`` lies inside the mounted source tree."""
        return _under(os.path.realpath(path), self.root)

    def outside(self, path: str, what: str) -> OutsideSource | None:
        """None when the bytes of ``path`` (which ``what`` refers to) may be read: inside
        SOURCE or a folder given to ``--allow-outside``; else the error to raise on read.
        The one rule every backend applies before reading a file other than its own."""
        real = os.path.realpath(path)
        if any(_under(real, top) for top in (self.root, *self.allow_outside)):
            return None
        return OutsideSource(f"{what}: refers to {path}, outside SOURCE; not read (allow with --allow-outside)")

    def check_readable(self, path: str, what: str) -> None:
        """Raise :meth:`outside`'s error, logged once, if there is one."""
        error = self.outside(path, what)
        if error is not None:
            log_once(str(error.strerror), str(error.strerror))
            raise error


def _under(real: str, top: str) -> bool:
    return real == top or real.startswith(top.rstrip("/") + "/")
