"""What every backend shares while a mount is up: the chunk cache, options, the root."""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field

from vfs.cache import ChunkCache


@dataclass
class Context:
    """Mount-wide state handed to backends.

    ``root`` is the real path of SOURCE's folder (the folder containing SOURCE when
    SOURCE is a single file): links may point inside it and never outside.
    ``formats`` names the optional backends switched on with ``--formats``.
    """

    root: str
    cache: ChunkCache = field(default_factory=ChunkCache)
    formats: frozenset[str] = frozenset()
    max_open_files: int = 128
    recheck_seconds: float = 0.25
    mount_is_folder: bool = True
    #: SOURCE as given (absolute): shown in ``.vfs-stats`` so that ``vfs info`` on a path
    #: inside a mount finds where its bytes come from
    source: str = ""
    #: the last reads served (path, offset, size): shown in .vfs-stats for diagnosis
    recent_reads: deque[tuple[str, int, int]] = field(default_factory=lambda: deque(maxlen=64))

    def inside(self, path: str) -> bool:
        """Whether ``path`` lies inside the mounted source tree."""
        real = os.path.realpath(path)
        return real == self.root or real.startswith(self.root.rstrip("/") + "/")
