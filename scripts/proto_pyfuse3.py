#!/usr/bin/env python3
"""A prototype of a vfs adapter on pyfuse3, the low-level (inode-based, async) FUSE API.

Used by scripts/bench_binding.py to compare with mfusepy (the path-based API vfs uses).
Two filesystems:

* :func:`serve_memory`: ``/data`` (``size`` bytes from memory) and ``/stats`` (request
  sizes seen), the same as bench_binding's fusepy-API filesystem, so the figures compare
  bindings and nothing else;
* :func:`serve_vfs`: a real vfs tree (``vfs.tree``) behind the low-level API: inodes are
  the tree's own inode numbers, a lookup is one child lookup (no path walk per call),
  reads return the rendering's buffer (``read_buffer``) without a copy in Python; reads
  run on worker threads (``trio.to_thread``) so decoding does not stop the event loop.

Not part of vfs: pyfuse3 has no wheel (it builds against libfuse3-dev with a compiler),
see docs/benchmarks.md for the figures and the decision.

    python scripts/proto_pyfuse3.py --vfs SOURCE MOUNTPOINT     # serve a vfs tree
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
import threading
import time
from collections import Counter
from typing import Any

import pyfuse3
import trio

ROOT = pyfuse3.ROOT_INODE


def _attrs(ino: int, mode: int, size: int, mtime_ns: int) -> pyfuse3.EntryAttributes:
    entry = pyfuse3.EntryAttributes()
    entry.st_ino = ino
    entry.st_mode = mode
    entry.st_nlink = 2 if stat.S_ISDIR(mode) else 1
    entry.st_size = size
    entry.st_uid = os.getuid()
    entry.st_gid = os.getgid()
    entry.st_atime_ns = entry.st_mtime_ns = entry.st_ctime_ns = mtime_ns
    entry.attr_timeout = entry.entry_timeout = 3600
    entry.st_blksize = 1 << 20
    entry.st_blocks = -(-size // 512)
    return entry


def _run(ops: pyfuse3.Operations, mountpoint: str, name: str) -> None:
    options = set(pyfuse3.default_options)
    options |= {f"fsname={name}", "ro"}
    options.discard("default_permissions")
    pyfuse3.init(ops, mountpoint, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)


def serve_memory(size: int, mountpoint: str, stats_size: int) -> None:
    """``/data`` (random bytes) and ``/stats`` (JSON of read sizes), as bench_binding."""
    import numpy as np

    data = memoryview(np.random.default_rng(1).bytes(size))
    sizes: Counter[int] = Counter()
    lock = threading.Lock()
    now = time.time_ns()
    names = {b"data": ROOT + 1, b"stats": ROOT + 2}

    def stats_bytes() -> bytes:
        with lock:
            text = json.dumps({str(k): v for k, v in sizes.items()}).encode()
        return text.ljust(stats_size)[:stats_size]

    class MemFS(pyfuse3.Operations):  # type: ignore[misc]
        async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
            if inode == ROOT:
                return _attrs(inode, stat.S_IFDIR | 0o555, 0, now)
            if inode == ROOT + 1:
                return _attrs(inode, stat.S_IFREG | 0o444, size, now)
            if inode == ROOT + 2:
                return _attrs(inode, stat.S_IFREG | 0o444, stats_size, now)
            raise pyfuse3.FUSEError(errno.ENOENT)

        async def lookup(self, parent: int, name: bytes, ctx: Any = None) -> pyfuse3.EntryAttributes:
            if parent != ROOT or name not in names:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return await self.getattr(names[name])

        async def opendir(self, inode: int, ctx: Any) -> int:
            return inode

        async def readdir(self, fh: int, start_id: int, token: Any) -> None:
            items = list(names.items())
            for k in range(start_id, len(items)):
                name, ino = items[k]
                if not pyfuse3.readdir_reply(token, name, await self.getattr(ino), k + 1):
                    break

        async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
            return pyfuse3.FileInfo(fh=inode)

        async def read(self, fh: int, off: int, size_: int) -> Any:
            if fh == ROOT + 2:
                return stats_bytes()[off:off + size_]
            with lock:
                sizes[size_] += 1
            return data[off:off + size_]

    _run(MemFS(), mountpoint, "bench-pyfuse3")


def serve_vfs(source: str, mountpoint: str) -> None:
    """A vfs tree of ``source`` behind the low-level API (a prototype of the adapter)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from vfs.cache import ChunkCache
    from vfs.context import Context
    from vfs.errors import VfsError
    from vfs.nodes import Directory, File
    from vfs.tree import build_root

    folder = source if os.path.isdir(source) else os.path.dirname(os.path.abspath(source))
    root = build_root(source, Context(root=os.path.realpath(folder), cache=ChunkCache(1 << 30)))
    nodes: dict[int, Any] = {ROOT: root}

    def attrs(ino: int, node: Any) -> pyfuse3.EntryAttributes:
        if isinstance(node, Directory):
            return _attrs(ino, stat.S_IFDIR | 0o555, 0, node.mtime_ns)
        return _attrs(ino, stat.S_IFREG | 0o444, node.size, node.mtime_ns)

    class VfsLowLevel(pyfuse3.Operations):  # type: ignore[misc]
        async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
            node = nodes.get(inode)
            if node is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return attrs(inode, node)

        async def lookup(self, parent: int, name: bytes, ctx: Any = None) -> pyfuse3.EntryAttributes:
            folder = nodes.get(parent)
            try:
                child = folder.child(os.fsdecode(name)) if isinstance(folder, Directory) else None
            except VfsError:
                child = None
            if child is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            ino = child.ino
            nodes[ino] = child
            return attrs(ino, child)

        async def opendir(self, inode: int, ctx: Any) -> int:
            return inode

        async def readdir(self, fh: int, start_id: int, token: Any) -> None:
            items = sorted(nodes[fh].children().items())
            for k in range(start_id, len(items)):
                name, child = items[k]
                ino = child.ino
                nodes[ino] = child
                if not pyfuse3.readdir_reply(token, os.fsencode(name), attrs(ino, child), k + 1):
                    break

        async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
            node = nodes.get(inode)
            if not isinstance(node, File):
                raise pyfuse3.FUSEError(errno.EISDIR)
            return pyfuse3.FileInfo(fh=inode, keep_cache=True)

        async def read(self, fh: int, off: int, size: int) -> Any:
            node = nodes[fh]
            data = await trio.to_thread.run_sync(node.read_buffer, off, size)
            return data

    _run(VfsLowLevel(), mountpoint, "vfs-pyfuse3")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--vfs":
        serve_vfs(sys.argv[2], sys.argv[3])
    else:
        print(__doc__)
        sys.exit(2)
