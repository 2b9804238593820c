"""A read-only pass-through FUSE filesystem whose files named ``slow*`` answer every
read after a delay: a source on a slow disk or network, for tests.

    python -m tests.slowfs SOURCE MOUNTPOINT DELAY_SECONDS      (foreground)
"""

from __future__ import annotations

import errno
import os
import sys
import time
from typing import Any

os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")

import mfusepy as fuse  # noqa: E402


class SlowFS(fuse.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, root: str, delay: float) -> None:
        self.root = root
        self.delay = delay

    def _real(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        try:
            st = os.lstat(self._real(path))
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno or errno.EIO) from None
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino")
        out: dict[str, Any] = {k: getattr(st, k) for k in keys}
        out.update(st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns, st_atime=st.st_atime_ns)
        return out

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", *os.listdir(self._real(path))]

    def open(self, path: str, flags: Any) -> int:
        return 0

    def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
        if os.path.basename(path).startswith("slow"):
            time.sleep(self.delay)
        with open(self._real(path), "rb") as f:
            f.seek(offset)
            return f.read(size)


if __name__ == "__main__":
    source, mountpoint, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    fuse.FUSE(SlowFS(source, delay), mountpoint, foreground=True, ro=True)
