"""SPEC files as folders: a folder per scan, a file per column, MCA spectra as arrays.

The tree follows silx (``silx.io.spech5``) so that a path in the mount is the path a
silx user knows; docs/layout.md has the picture. Opening the file indexes it once
(:mod:`vfs.formats.specparse`, byte offsets only); opening a scan's folder parses that
scan alone. A file that grows (an acquisition appending points and scans) is followed
by :meth:`SpecRoot.refresh`: the index is extended from its last block, only the last
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

import numpy as np

from vfs.arrays import ArraySource, ChunkedSource, MemorySource
from vfs.context import Context
from vfs.errors import Unreadable
from vfs.formats import specparse as sp
from vfs.formats.conventions import energy_values
from vfs.logutil import log, log_once
from vfs.nodes import BytesFile, Directory, Entries, File, Node, Symlink, make_ino
from vfs.render.files import add_array_files

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


class SourceView:
    """Guarded reads of one version of the source file.

    A read checks that the path still names the same file (device, inode) and that the
    bytes asked for still exist, so a truncated or replaced file gives EIO, not other
    bytes; ``check`` compares a small sample of bytes recorded at index time.
    """

    def __init__(self, path: str, st: os.stat_result) -> None:
        self.path = path
        self.dev, self.inode = st.st_dev, st.st_ino

    def read(self, offset: int, length: int, check: bytes | None = None) -> bytes:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise Unreadable(f"{self.path}: cannot open: {exc.strerror}") from exc
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (self.dev, self.inode):
                raise Unreadable(f"{self.path}: replaced since it was indexed")
            if st.st_size < offset + length:
                raise Unreadable(f"{self.path}: truncated since it was indexed")
            data = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        if len(data) != length or (check is not None and not data.startswith(check)):
            raise Unreadable(f"{self.path}: changed since it was indexed")
        return data


class McaSource(ChunkedSource):
    """One analyser's spectra, shape (points, channels); each row is parsed on demand.

    A chunk is one spectrum; decoded spectra live in the shared chunk cache.
    """

    def __init__(self, view: SourceView, ranges: list[tuple[int, int]], nch: int, label: str,
                 key: tuple[object, ...], ctx: Context) -> None:
        super().__init__((len(ranges), nch), np.dtype(np.float64), (1, nch), label, key, ctx.cache,
                         {"interpretation": "spectrum"})
        self.view = view
        self.ranges = ranges

    def load_chunk(self, index: tuple[int, ...]) -> np.ndarray:
        start, end = self.ranges[index[0]]
        values = sp.parse_spectrum(self.view.read(start, end - start, b"@"))
        row = np.full((1, self.shape[1]), np.nan)
        n = min(values.size, self.shape[1])
        row[0, :n] = values[:n]
        return row


class ColumnSource(ArraySource):
    """One column of a scan, converted from text the first time it is read."""

    def __init__(self, table: sp.Table, j: int, label: str) -> None:
        n = table.npoints if table.ncols else 0
        super().__init__((n,), np.dtype(np.float64), (max(n, 1),), label)
        self.table = table
        self.j = j

    def values(self) -> np.ndarray:
        return self.table.column(self.j) if self.table.ncols else np.empty(0, np.float64)

    def fill_box(self, start: tuple[int, ...], extent: tuple[int, ...], out: np.ndarray) -> None:
        out[...] = self.values()[start[0] : start[0] + extent[0]]

    def read_flat(self, a: int, b: int) -> np.ndarray:
        return self.values()[max(a, 0) : b]


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
        self.index = self._map(size, 0, lambda data, base: sp.build_index(data, size))
        self._tail = self._tail_crc(self.index.end)
        self._update(st.st_mtime_ns)

    def _map(self, size: int, start: int, fn: Callable[[sp.Text, int], T]) -> T:
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
            index = self._map(size, sp.restart_offset(old), lambda data, base: sp.extend_index(old, data, size, base))
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
        return ScanBuilder(self, scan, block, header).entries()


class ScanSpecFile(File):
    """``scan.spec``: the scan's file header and the scan itself, as one SPEC file.

    Its bytes are the source's own (read on demand, checked like every read); a ``#F``
    line is put first when the header has none, so every SPEC reader accepts it.
    """

    def __init__(self, ino: int, mtime_ns: int, view: SourceView, prefix: bytes,
                 parts: list[tuple[int, int, bytes]]) -> None:
        super().__init__(ino, mtime_ns)
        self.view = view
        self.prefix = prefix
        self.parts = parts

    @property
    def size(self) -> int:
        return len(self.prefix) + sum(length for _, length, _ in self.parts)

    def read(self, offset: int, size: int) -> bytes:
        out = []
        pos = 0
        for start, length, check in [(-1, len(self.prefix), b""), *self.parts]:
            lo, hi = max(offset, pos), min(offset + size, pos + length)
            if lo < hi:
                if start < 0:
                    out.append(self.prefix[lo - pos : hi - pos])
                else:
                    piece = self.view.read(start, length, check) if lo - pos < len(check) else None
                    out.append(piece[lo - pos : hi - pos] if piece is not None
                               else self.view.read(start + lo - pos, hi - lo))
            pos += length
        return b"".join(out)


def _text(text: str) -> bytes:
    return (text + "\n").encode("utf-8", "surrogateescape") if text else b""


def safe_name(name: str, fallback: str) -> str:
    """A name the OS accepts: ``/`` -> ``%`` (silx's rule), NUL -> ``%``, at most 240 bytes."""
    name = name.replace("/", "%").replace("\x00", "%")
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) > 240:
        name = raw[:240].decode("utf-8", "surrogateescape")
    return name or fallback


class ScanBuilder:
    """The nodes of one parsed scan (silx's tree, plus ``data.txt`` and ``scan.spec``)."""

    def __init__(self, folder: ScanFolder, scan: sp.ScanData, block: bytes, header: bytes) -> None:
        self.folder = folder
        self.root = folder.root
        self.scan = scan
        self.block = block
        self.header = header
        self.mtime = folder.mtime_ns
        self.columns: list[tuple[str, str, ColumnSource]] = []  # (label, file stem, source)
        self.mca_suffixes: list[str] = []

    def ino(self, *path: object) -> int:
        return make_ino(self.root.ident, self.folder.key, *path)

    def folder_node(self, path: str, entries: Mapping[str, Node], nx_class: str | None = None) -> Directory:
        attrs = {"user.NX_class": nx_class.encode()} if nx_class else {}
        return Directory(self.ino(path), self.mtime, loader=lambda: entries, xattrs=lambda: attrs)

    def text_file(self, path: str, text: str) -> BytesFile:
        return BytesFile(self.ino(path), self.mtime, _text(text))

    def arrays(self, entries: Entries, path: str, stem: str, source: ArraySource,
               suffixes: list[str] | None = None) -> None:
        add_array_files(entries, stem, source, (self.root.ident, self.folder.key, path), self.mtime,
                        suffixes=suffixes)

    def entries(self) -> Entries:
        scan = self.scan
        out = Entries()
        out.add("title.txt", self.text_file("title", scan.title))
        date = sp.header_value(scan.header_lines, b"D")
        if date is None:
            date = sp.header_value([ln for ln in self.header.split(b"\n") if ln.startswith(b"#")], b"D")
        out.add("start_time.txt", self.text_file("start_time", sp.iso_date(sp.decode(date or b"").strip())))
        self.make_columns()
        instrument = self.instrument()
        out.add("instrument", instrument)
        out.add("measurement", self.measurement())
        sample = self.sample()
        if sample is not None:
            out.add("sample", sample)
        out.add("data.txt", BytesFile(self.ino("data.txt"), self.mtime, self.data_text))
        out.add("scan.spec", self.scan_spec())
        return out

    # -- measurement ------------------------------------------------------------------
    def make_columns(self) -> None:
        """One float64 array per column: named by ``#L``, ``column_<j>`` where unlabelled."""
        table = self.scan.table
        ncols = table.ncols
        labels = self.scan.labels
        if ncols and len(labels) > ncols:
            log_once(f"spec-labels:{self.root.path}:{self.folder.key}",
                     f"{self.root.path}: scan {self.folder.key}: {len(labels)} labels but {ncols} data columns; "
                     "labels without a column are not shown")
        for j in range(ncols if ncols else len(labels)):
            label = labels[j] if j < len(labels) and labels[j] else f"column_{j}"
            source = ColumnSource(table, j, f"{self.root.path}::{self.folder.key}/measurement/{label}")
            self.columns.append((label, safe_name(label, f"column_{j}"), source))

    def measurement(self) -> Directory:
        entries = Entries()
        for j, (_, stem, source) in enumerate(self.columns):
            self.arrays(entries, f"measurement/{j}", stem, source)
        for name in self.mca_names():
            target = f"../../instrument/{name}"
            links = Entries()
            for suffix in self.mca_suffixes:
                links.add(f"data.{suffix}", Symlink(self.ino(f"measurement/{name}/data.{suffix}"), self.mtime,
                                                    f"{target}/data.{suffix}"))
            links.add("info", Symlink(self.ino(f"measurement/{name}/info"), self.mtime, target))
            entries.add(name, self.folder_node(f"measurement/{name}", links))
        return self.folder_node("measurement", entries, "NXcollection")

    # -- instrument -------------------------------------------------------------------
    def instrument(self) -> Directory:
        entries = Entries()
        specfile = Entries()
        file_lines = [ln for ln in self.header.split(b"\n") if ln.startswith(b"#")]
        specfile.add("file_header.txt", BytesFile(self.ino("file_header"), self.mtime, _lines(file_lines)))
        specfile.add("scan_header.txt", BytesFile(self.ino("scan_header"), self.mtime, _lines(self.scan.header_lines)))
        entries.add("specfile", self.folder_node("instrument/specfile", specfile, "NXcollection"))
        entries.add("positioners", self.positioners())
        for a, name in enumerate(self.mca_names()):
            entries.add(name, self.mca(a, name))
        return self.folder_node("instrument", entries, "NXinstrument")

    def positioners(self) -> Directory:
        entries = Entries()
        by_label: dict[str, ColumnSource] = {}
        if self.scan.table.npoints:
            for label, _, source in self.columns:
                by_label.setdefault(label, source)
        for i, (name, value) in enumerate(self.scan.motors):
            stem = safe_name(name, f"motor_{i}")
            path = f"instrument/positioners/{i}"
            if name in by_label:  # a motor that is also a column is that column (silx)
                self.arrays(entries, path, stem, by_label[name])
            elif isinstance(value, float):
                self.arrays(entries, path, stem, MemorySource(np.array(value, np.float64), name))
            else:
                entries.add(f"{stem}.txt", self.text_file(path, value))
        return self.folder_node("instrument/positioners", entries, "NXcollection")

    # -- MCA ----------------------------------------------------------------------------
    def mca_names(self) -> list[str]:
        return [f"mca_{a}" for a in range(self.scan.analysers)]

    def _per_analyser(self, key: bytes, a: int) -> bytes | None:
        lines = self.scan.mca_header(key)
        if not lines:
            return None
        chann = self.scan.mca_header(b"CHANN")
        return lines[a] if len(chann) > 1 and a < len(lines) else lines[0]  # silx's choice

    def mca(self, a: int, name: str) -> Directory:
        scan, root = self.scan, self.root
        k = scan.analysers
        start = self.folder.span[0]
        ranges = [(start + s, start + e) for s, e in scan.spectra]
        rows = len(ranges) // k
        mine = ranges[a::k][:rows]
        first = scan.spectra[a] if a < len(scan.spectra) else (0, 0)
        nch = sp.parse_spectrum(self.block[first[0] : first[1]]).size
        key = (root.ident, root.build, self.folder.key, self.folder.span[0], name, k)
        source = McaSource(root.view, mine, nch, f"{root.path}::{self.folder.key}/instrument/{name}/data",
                           key, root.ctx)
        entries = Entries()
        self.arrays(entries, f"instrument/{name}/data", "data", source)
        self.mca_suffixes = [n.rpartition(".")[2] for n in entries]
        calib_text = self._per_analyser(b"CALIB", a)
        calib = sp.numbers(calib_text, 3) if calib_text is not None else []
        if calib_text is not None and len(calib) < 3:
            log_once(f"spec-calib:{root.path}:{calib_text!r}", f"{root.path}: unreadable #@CALIB {calib_text!r}")
        self.arrays(entries, f"instrument/{name}/calibration", "calibration",
                    MemorySource(np.array(calib if len(calib) == 3 else [0.0, 1.0, 0.0]), "calibration"))
        channels = self.channels(a, nch)
        self.arrays(entries, f"instrument/{name}/channels", "channels", MemorySource(channels, "channels"))
        if len(calib) == 3:  # PyMca's energy axis, where the scan has a calibration
            self.arrays(entries, f"instrument/{name}/energy", "energy",
                        MemorySource(energy_values(np.array(calib), channels), "energy"), ["npy", "txt"])
        ctime = self._per_analyser(b"CTIME", a)
        if ctime is not None and len(sp.numbers(ctime, 3)) == 3:
            for stem, value in zip(("preset_time", "live_time", "elapsed_time"), sp.numbers(ctime, 3)):
                self.arrays(entries, f"instrument/{name}/{stem}", stem, MemorySource(np.array(value), stem))
        return self.folder_node(f"instrument/{name}", entries, "NXdetector")

    def channels(self, a: int, nch: int) -> np.ndarray:
        """``#@CHANN n first last step`` as channel numbers, fitted to the spectrum (silx)."""
        text = self._per_analyser(b"CHANN", a)
        values = [int(v) for v in sp.numbers(text, 4)] if text is not None else []
        if len(values) == 4:
            channels: np.ndarray = np.arange(values[1], values[2] + 1, values[3] or 1, dtype=np.int64)
        else:
            channels = np.arange(nch, dtype=np.int64)
        if len(channels) > 1 and nch > 0:
            if len(channels) > nch:
                channels = channels[:nch]
            elif len(channels) < nch:
                step = channels[1] - channels[0]
                channels = np.linspace(channels[0], channels[0] + step * nch, nch, endpoint=False)
        return channels

    # -- sample, data.txt, scan.spec ----------------------------------------------------
    def sample(self) -> Directory | None:
        lines = self.scan.header_lines
        entries = Entries()
        cell = sp.numbers(sp.header_value(lines, b"G1") or b"", 6)
        if len(cell) == 6 and any(cell):
            arr = np.array(cell).reshape(1, 6)
            for stem, value in (("unit_cell", arr), ("unit_cell_abc", arr[0, :3]),
                                ("unit_cell_alphabetagamma", arr[0, 3:])):
                self.arrays(entries, f"sample/{stem}", stem, MemorySource(np.ascontiguousarray(value), stem),
                            ["npy", "txt"])
        for key in (b"G3", b"UB"):  # #G3 as silx; #UB (psic) when there is no usable #G3
            ub = sp.numbers(sp.header_value(lines, key) or b"", 9)
            if len(ub) == 9 and any(ub):
                self.arrays(entries, "sample/ub_matrix", "ub_matrix",
                            MemorySource(np.array(ub).reshape(1, 3, 3), "ub_matrix"), ["npy", "txt"])
                break
        return self.folder_node("sample", entries, "NXsample") if entries else None

    def data_text(self) -> bytes:
        """The table with a ``#L`` line of labels: numpy.loadtxt, gnuplot and awk read it."""
        names = "  ".join(label for label, _, _ in self.columns)
        rows = self.scan.data.tolist() if self.scan.table.ncols else []
        body = "".join(" ".join(map(repr, row)) + "\n" for row in rows)
        return (f"#L {names}\n" + body).encode("utf-8", "surrogateescape")

    def scan_spec(self) -> ScanSpecFile:
        parts: list[tuple[int, int, bytes]] = []
        h_off, h_len = self.folder.header
        if h_len:
            parts.append((h_off, h_len, self.header[:64]))
        start, end = self.folder.span
        parts.append((start, end - start, self.block[:64]))
        prefix = b"" if self.header.startswith(b"#F") else b"#F " + os.fsencode(self.root.name) + b"\n"
        return ScanSpecFile(self.ino("scan.spec"), self.mtime, self.root.view, prefix, parts)


def _lines(lines: list[bytes]) -> bytes:
    return b"".join(ln + b"\n" for ln in lines)
