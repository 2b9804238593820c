"""SPEC files as folders: a folder per scan, a file per column, MCA spectra as arrays.

The tree follows silx (``silx.io.spech5``) so that a path in the mount is the path a
silx user knows; docs/layout.md has the picture. Opening the file indexes it once
(:mod:`vfs.formats.specparse`, byte offsets only); opening a scan's folder parses that
scan alone (:mod:`vfs.formats.specscan` makes its folder, whose sub-folders are listed
only when opened; :mod:`vfs.formats.specsources` holds what their files read). A file
that grows (an acquisition appending points and scans) is followed by
:meth:`SpecRoot.refresh`: the index is extended from its last block, only the last
scan's folder is rebuilt, and folders of scans that did not change are kept as they are.
A file that was truncated or replaced is rebuilt from scratch; reads that still point
into the old content get EIO, never other bytes.
"""

from __future__ import annotations

import itertools
import mmap
import os
import zlib
from collections.abc import Callable, Mapping
from typing import TypeVar

from vfs.context import Context
from vfs.errors import Unreadable
from vfs.formats import specparse as sp
from vfs.formats import specindex as si
from vfs.formats.specscan import ScanParts
from vfs.formats.specsources import SourceView
from vfs.limits import MAX_SCANS
from vfs.logutil import log, log_once
from vfs.nodes import Directory, Node, make_ino

PROBE_SIZE = 1 << 16
TAIL = 4096
_builds = itertools.count(1)
T = TypeVar("T")


def probe(path: str, ctx: Context) -> None:
    """Refuse files that start like SPEC but hold no ``#S``, ``#F`` or ``#E`` line."""
    with open(path, "rb") as fh:
        head = fh.read(PROBE_SIZE)
    if not (head[:2] in (b"#S", b"#F", b"#E") or any(m in head for m in (b"\n#S", b"\n#F", b"\n#E"))):
        raise ValueError("no #S, #F or #E line in the first 64 KiB")


def open_folder(path: str, st: os.stat_result, ctx: Context, ino: int) -> Directory:
    """The file's folder (the registry's entry point): the index is built here, once."""
    return SpecRoot(path, st, ctx, ino)


class SpecRoot(Directory):
    """The file's folder: one sub-folder per scan, keyed ``N.M`` as silx keys them."""

    def __init__(self, path: str, st: os.stat_result, ctx: Context, ino: int) -> None:
        super().__init__(ino, st.st_mtime_ns, xattrs=lambda: {"user.NX_class": b"NXroot"})
        self.path = path
        self.ctx = ctx
        self.name = os.path.basename(path)
        self.ident = ("spec", st.st_dev, st.st_ino)
        self.view = SourceView(path, st)
        self.build = next(_builds)
        self._scans: dict[tuple[int, int], ScanFolder] = {}
        size = st.st_size
        self.index = self._map(size, 0, lambda data, base: si.build_index(data, size))
        self._tail = self._tail_crc(self.index.end)
        self._update(st.st_mtime_ns)

    def _map(self, size: int, start: int, fn: Callable[[si.Text, int], T]) -> T:
        """Run ``fn(bytes, base)`` on the file's bytes from ``start`` (rounded down to ``base``).

        An mmap with its pages faulted in bulk: one pass, nothing copied, and appends
        map only the part that is new.
        """
        if size <= start:
            return fn(b"", start)
        with open(self.path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if (st.st_dev, st.st_ino) != (self.view.dev, self.view.inode) or st.st_size < size:
                raise Unreadable(f"{self.path}: changed while indexing")
            base = start - start % mmap.ALLOCATIONGRANULARITY
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            with mmap.mmap(fh.fileno(), size - base, flags=flags, prot=mmap.PROT_READ, offset=base) as mm:
                return fn(mm, base)

    def _tail_crc(self, end: int) -> int:
        """Checksum of the last indexed bytes: later growth must leave them as they are."""
        return zlib.crc32(self.view.read(max(end - TAIL, 0), min(end, TAIL))) if end else 0

    def _update(self, mtime_ns: int) -> None:
        """Children from the index; scans whose bytes did not move keep their folder."""
        index = self.index
        if index.dropped:
            log_once(f"spec-scans:{self.path}", f"{self.path}: more than {MAX_SCANS} scans; "
                     f"the ones after byte {index.end} are not shown")
        scans: dict[tuple[int, int], ScanFolder] = {}
        children: dict[str, Node] = {}
        for i in index.scans():
            block = index.blocks[i]
            span = (block.offset, index.block_end(i))
            node = self._scans.get(span)
            if node is None or node.position != i:
                node = ScanFolder(self, i, span, mtime_ns)
            scans[span] = node
            children[block.key] = node
        self._scans = scans
        with self._lock:
            self._children = children

    def load(self) -> Mapping[str, Node]:
        return {self.index.blocks[n.position].key: n for n in self._scans.values()}

    def refresh(self, st: os.stat_result) -> bool:
        """Follow a file that only grew; False (rebuild everything) for any other change."""
        end = self.index.end
        if (st.st_dev, st.st_ino) != (self.view.dev, self.view.inode) or st.st_size < end:
            return False
        size = st.st_size
        try:
            if self._tail_crc(end) != self._tail:
                return False
            old = self.index
            index = self._map(size, si.restart_offset(old), lambda data, base: si.extend_index(old, data, size, base))
            tail = self._tail_crc(index.end)
        except (OSError, ValueError):
            return False
        self.mtime_ns = st.st_mtime_ns
        if index.end != end:
            self.index, self._tail = index, tail
            self._update(st.st_mtime_ns)
            log.debug("%s: grew to %d bytes, %d scans", self.path, index.end, len(self._scans))
        return True

    def header_span(self, position: int) -> tuple[int, int]:
        """(offset, length) of the file header block a scan uses, (0, 0) if none."""
        h = self.index.blocks[position].header
        if h < 0:
            return (0, 0)
        start = self.index.blocks[h].offset
        return (start, self.index.block_end(h) - start)


class ScanFolder(Directory):
    """One scan; its bytes are read and parsed the first time someone looks inside."""

    def __init__(self, root: SpecRoot, position: int, span: tuple[int, int], mtime_ns: int) -> None:
        block = root.index.blocks[position]
        super().__init__(make_ino(root.ident, block.key), mtime_ns, xattrs=self._attrs)
        self.root = root
        self.position = position
        self.span = span
        self.header = root.header_span(position)
        self.key = block.key
        self.skipped = 0

    def _attrs(self) -> Mapping[str, bytes]:
        self.children()
        return {"user.NX_class": b"NXentry", "user.skipped_lines": str(self.skipped).encode()}

    def load(self) -> Mapping[str, Node]:
        view = self.root.view
        start, end = self.span
        block = view.read(start, end - start, b"#S")
        header = view.read(*self.header) if self.header[1] else b""
        scan = sp.parse_scan(block, header)
        self.skipped = len(scan.bad_lines)
        if scan.bad_lines:
            log_once(f"spec-bad:{self.root.path}:{self.root.build}:{self.key}",
                     f"{self.root.path}: scan {self.key}: {len(scan.bad_lines)} malformed data line(s) "
                     f"skipped (first: data line {scan.bad_lines[0] + 1})")
        return ScanParts(self, scan, block, header).entries()


