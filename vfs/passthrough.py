"""Plain files served as they are: same bytes, size and mtime as the source."""

from __future__ import annotations

import os

from vfs.errors import NodeNotFound, Unreadable
from vfs.nodes import Access, File, make_ino


class PassthroughFile(File):
    """A source file that is not data (or not recognised): read with ``pread``.

    Size and mtime are taken from ``stat`` at each ``getattr`` so a file that grows
    shows its new size.
    """

    access: Access

    def __init__(self, path: str, st: os.stat_result) -> None:
        super().__init__(make_ino("src", st.st_dev, st.st_ino), st.st_mtime_ns)
        self.path = path
        self.access = Access.of_source(st)

    def _stat(self) -> os.stat_result:
        try:
            st = os.stat(self.path)
        except FileNotFoundError as exc:
            raise NodeNotFound(self.path) from exc
        self.access.update(Access.of_source(st))
        return st

    def current_access(self) -> Access:
        self._stat()
        return self.access

    @property
    def size(self) -> int:
        st = self._stat()
        self.mtime_ns = st.st_mtime_ns
        return st.st_size

    def open(self) -> None:
        if not os.access(self.path, os.R_OK):
            raise Unreadable(f"{self.path}: not readable")

    def read(self, offset: int, size: int) -> bytes:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)
