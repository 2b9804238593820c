"""The folder of one parsed SPEC scan: silx's tree (``silx.io.spech5``), plus ``data.txt``
and ``scan.spec``.

::

    1.1/  title.txt start_time.txt data.txt scan.spec
      measurement/<label>.npy|.txt          one float64 array per column
      measurement/mca_<a>/data.* info       links to instrument/mca_<a>
      instrument/specfile/file_header.txt scan_header.txt
      instrument/positioners/<motor>.npy|.txt
      instrument/mca_<a>/data.* calibration channels energy preset_time live_time elapsed_time
      sample/unit_cell* ub_matrix           where #G1 / #G3 (#UB) hold values

:class:`ScanParts` holds what the folders of one scan share (the parsed scan, its
columns); each sub-folder is a small class whose ``load`` lists it, so an MCA spectrum
is only measured when ``instrument/mca_<a>`` is opened. Names come from
:func:`vfs.naming.safe_name`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from vfs.arrays import ArraySource, MemorySource
from vfs.formats import specparse as sp
from vfs.formats.conventions import energy_values
from vfs.formats.specsources import ColumnSource, McaSource, ScanSpecFile
from vfs.limits import MAX_ANALYSERS, MAX_CHANNELS, MAX_COLUMNS
from vfs.logutil import log_once
from vfs.naming import safe_name
from vfs.nodes import BytesFile, Directory, Entries, Node, Symlink, charge, make_ino
from vfs.render.files import add_array_files, suffixes_for

if TYPE_CHECKING:
    from vfs.formats.spec import ScanFolder

def _text(text: str) -> bytes:
    return (text + "\n").encode("utf-8", "surrogateescape") if text else b""


def _lines(lines: list[bytes]) -> bytes:
    return b"".join(ln + b"\n" for ln in lines)


#: memory counted per MCA spectrum's byte range kept (a tuple of two ints in a list)
RANGE_BYTES = 120


class ScanParts:
    """One parsed scan and what its folders share (inode identities, columns).

    The scan's bytes are not kept: only the text of its data rows (in its table, until
    a column is read), its header lines and its spectra's byte ranges, which its build
    counts in the bound on built nodes (:func:`vfs.nodes.charge`); a spectrum is read
    from the file when needed.
    """

    def __init__(self, folder: ScanFolder, scan: sp.ScanData, block: bytes, header: bytes) -> None:
        self.folder = folder
        self.root = folder.root
        self.scan = scan
        self.head = block[:64]  # checked against the file when scan.spec is read
        self.header = header
        charge(len(scan.table.text or b"") + len(header) + sum(map(len, scan.header_lines))
               + RANGE_BYTES * len(scan.spectra))
        self.mtime = folder.mtime_ns
        self.columns = self._columns()
        self._mca_shapes: dict[int, tuple[int, int]] = {}

    def ino(self, *path: object) -> int:
        return make_ino(self.root.ident, self.folder.key, *path)

    def text_file(self, path: str, text: str) -> BytesFile:
        return BytesFile(self.ino(path), self.mtime, _text(text))

    def arrays(self, entries: Entries, path: str, stem: str, source: ArraySource,
               suffixes: list[str] | None = None) -> None:
        add_array_files(entries, stem, source, (self.root.ident, self.folder.key, path), self.mtime,
                        suffixes=suffixes)

    def over_limit(self, what: str, count: int, limit: int) -> None:
        """Log once that this scan declares more ``what`` than the limit; the rest is shown."""
        log_once(f"spec-limit:{self.root.path}:{self.folder.key}:{what}",
                 f"{self.root.path}: scan {self.folder.key}: {count} {what}, more than the limit of {limit}; "
                 "the ones beyond it are not shown")

    def mca_names(self) -> list[str]:
        if self.scan.analysers > MAX_ANALYSERS:
            self.over_limit("MCA analysers", self.scan.analysers, MAX_ANALYSERS)
        return [f"mca_{a}" for a in range(min(self.scan.analysers, MAX_ANALYSERS))]

    def mca_ranges(self, a: int) -> list[tuple[int, int]]:
        """File byte ranges of analyser ``a``'s spectra, one per point (whole points only)."""
        scan, start = self.scan, self.folder.span[0]
        k = scan.analysers
        ranges = [(start + s, start + e) for s, e in scan.spectra]
        return ranges[a::k][: len(ranges) // k]

    def mca_shape(self, a: int) -> tuple[int, int]:
        """(points, channels) of analyser ``a``: channels from its first spectrum."""
        if a not in self._mca_shapes:
            first = self.scan.spectra[a] if a < len(self.scan.spectra) else (0, 0)
            text = self.root.view.read(self.folder.span[0] + first[0], first[1] - first[0], b"@") if first[1] else b""
            nch = sp.parse_spectrum(text).size
            if nch > MAX_CHANNELS:
                self.over_limit("MCA channels", nch, MAX_CHANNELS)
                nch = 0
            self._mca_shapes[a] = (len(self.mca_ranges(a)), nch)
        return self._mca_shapes[a]

    def mca_suffixes(self, a: int) -> list[str]:
        """The renderings of analyser ``a``'s spectra (a preview only when not empty)."""
        return suffixes_for(self.mca_shape(a), np.dtype(np.float64))

    def _columns(self) -> list[tuple[str, str, ColumnSource]]:
        """(label, file stem, source) per column: named by ``#L``, ``column_<j>`` where
        unlabelled; a column is converted from text the first time it is read."""
        table, labels = self.scan.table, self.scan.labels
        ncols = table.ncols
        if ncols and len(labels) > ncols:
            log_once(f"spec-labels:{self.root.path}:{self.folder.key}",
                     f"{self.root.path}: scan {self.folder.key}: {len(labels)} labels but {ncols} data columns; "
                     "labels without a column are not shown")
        out = []
        count = ncols if ncols else len(labels)
        if count > MAX_COLUMNS:  # only #L can say more: data lines are bounded by the parser
            self.over_limit("labels", count, MAX_COLUMNS)
            count = MAX_COLUMNS
        for j in range(count):
            label = labels[j] if j < len(labels) and labels[j] else f"column_{j}"
            source = ColumnSource(table, j, f"{self.root.path}::{self.folder.key}/measurement/{label}")
            out.append((label, safe_name(label, f"column_{j}"), source))
        return out

    def entries(self) -> Entries:
        """The scan folder's own entries."""
        scan = self.scan
        out = Entries()
        out.add("title.txt", self.text_file("title", scan.title))
        date = sp.header_value(scan.header_lines, b"D")
        if date is None:
            date = sp.header_value([ln for ln in self.header.split(b"\n") if ln.startswith(b"#")], b"D")
        out.add("start_time.txt", self.text_file("start_time", sp.iso_date(sp.decode(date or b"").strip())))
        out.add("instrument", InstrumentFolder(self, "instrument", "NXinstrument"))
        out.add("measurement", MeasurementFolder(self, "measurement", "NXcollection"))
        if sample_arrays(scan.header_lines):
            out.add("sample", SampleFolder(self, "sample", "NXsample"))
        out.add("data.txt", BytesFile(self.ino("data.txt"), self.mtime, self.data_text))
        out.add("scan.spec", self.scan_spec())
        return out

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
        parts.append((start, end - start, self.head))
        prefix = b"" if self.header.startswith(b"#F") else b"#F " + os.fsencode(self.root.name) + b"\n"
        return ScanSpecFile(self.ino("scan.spec"), self.mtime, self.root.view, prefix, parts)


class ScanSubfolder(Directory):
    """A folder inside a scan; ``path`` (from the scan) identifies it, ``load`` lists it."""

    def __init__(self, parts: ScanParts, path: str, nx_class: str | None = None) -> None:
        attrs = {"user.NX_class": nx_class.encode()} if nx_class else {}
        super().__init__(parts.ino(path), parts.mtime, xattrs=lambda: attrs)
        self.parts = parts
        self.path = path


class MeasurementFolder(ScanSubfolder):
    """``measurement/``: the columns, and ``mca_<a>/`` links to each analyser."""

    def load(self) -> Mapping[str, Node]:
        parts = self.parts
        entries = Entries()
        for j, (_, stem, source) in enumerate(parts.columns):
            parts.arrays(entries, f"measurement/{j}", stem, source)
        for name in parts.mca_names():
            entries.add(name, McaLinks(parts, f"measurement/{name}"))
        return entries


class McaLinks(ScanSubfolder):
    """``measurement/mca_<a>/``: ``data.*`` and ``info`` link to ``instrument/mca_<a>``."""

    def load(self) -> Mapping[str, Node]:
        name = self.path.rpartition("/")[2]
        target = f"../../instrument/{name}"
        links = Entries()
        for suffix in self.parts.mca_suffixes(int(name.partition("_")[2])):
            links.add(f"data.{suffix}", Symlink(self.parts.ino(f"{self.path}/data.{suffix}"), self.parts.mtime,
                                                f"{target}/data.{suffix}"))
        links.add("info", Symlink(self.parts.ino(f"{self.path}/info"), self.parts.mtime, target))
        return links


class InstrumentFolder(ScanSubfolder):
    """``instrument/``: ``specfile/`` (the header lines), ``positioners/``, ``mca_<a>/``."""

    def load(self) -> Mapping[str, Node]:
        parts = self.parts
        entries = Entries()
        entries.add("specfile", SpecfileFolder(parts, "instrument/specfile", "NXcollection"))
        entries.add("positioners", PositionersFolder(parts, "instrument/positioners", "NXcollection"))
        for a, name in enumerate(parts.mca_names()):
            entries.add(name, McaFolder(parts, f"instrument/{name}", "NXdetector", a))
        return entries


class SpecfileFolder(ScanSubfolder):
    """``specfile/``: the file header's and the scan header's ``#`` lines, as written."""

    def load(self) -> Mapping[str, Node]:
        parts = self.parts
        entries = Entries()
        file_lines = [ln for ln in parts.header.split(b"\n") if ln.startswith(b"#")]
        entries.add("file_header.txt", BytesFile(parts.ino("file_header"), parts.mtime, _lines(file_lines)))
        entries.add("scan_header.txt", BytesFile(parts.ino("scan_header"), parts.mtime,
                                                 _lines(parts.scan.header_lines)))
        return entries


class PositionersFolder(ScanSubfolder):
    """``positioners/``: ``#O`` names with ``#P`` values; a motor that is also a column is
    that column (silx), a value that is not a number is a ``.txt``."""

    def load(self) -> Mapping[str, Node]:
        parts = self.parts
        entries = Entries()
        by_label: dict[str, ColumnSource] = {}
        if parts.scan.table.npoints:
            for label, _, source in parts.columns:
                by_label.setdefault(label, source)
        if len(parts.scan.motors) > MAX_COLUMNS:
            parts.over_limit("motors", len(parts.scan.motors), MAX_COLUMNS)
        for i, (name, value) in enumerate(parts.scan.motors[:MAX_COLUMNS]):
            stem = safe_name(name, f"motor_{i}")
            path = f"instrument/positioners/{i}"
            if name in by_label:
                parts.arrays(entries, path, stem, by_label[name])
            elif isinstance(value, float):
                parts.arrays(entries, path, stem, MemorySource(np.array(value, np.float64), name))
            else:
                entries.add(f"{stem}.txt", parts.text_file(path, value))
        return entries


class McaFolder(ScanSubfolder):
    """``instrument/mca_<a>/``: analyser ``a``'s spectra (parsed a row at a time, when
    read), calibration, channels and times from the ``#@`` header lines."""

    def __init__(self, parts: ScanParts, path: str, nx_class: str, analyser: int) -> None:
        super().__init__(parts, path, nx_class)
        self.analyser = analyser

    def _per_analyser(self, key: bytes) -> bytes | None:
        lines = self.parts.scan.mca_header(key)
        if not lines:
            return None
        chann = self.parts.scan.mca_header(b"CHANN")
        a = self.analyser
        return lines[a] if len(chann) > 1 and a < len(lines) else lines[0]  # silx's choice

    def load(self) -> Mapping[str, Node]:
        parts, a, path = self.parts, self.analyser, self.path
        scan, root, folder = parts.scan, parts.root, parts.folder
        name = path.rpartition("/")[2]
        nch = parts.mca_shape(a)[1]
        key = (root.ident, root.build, folder.key, folder.span[0], name, scan.analysers)
        ranges = parts.mca_ranges(a)
        charge(RANGE_BYTES * len(ranges))
        source = McaSource(root.view, ranges, nch, f"{root.path}::{folder.key}/{path}/data", key,
                           root.ctx)
        entries = Entries()
        parts.arrays(entries, f"{path}/data", "data", source, parts.mca_suffixes(a))
        calib_text = self._per_analyser(b"CALIB")
        calib = sp.numbers(calib_text, 3) if calib_text is not None else []
        if calib_text is not None and len(calib) < 3:
            log_once(f"spec-calib:{root.path}:{calib_text!r}", f"{root.path}: unreadable #@CALIB {calib_text!r}")
        parts.arrays(entries, f"{path}/calibration", "calibration",
                     MemorySource(np.array(calib if len(calib) == 3 else [0.0, 1.0, 0.0]), "calibration"))
        channels = self.channels(nch)
        parts.arrays(entries, f"{path}/channels", "channels", MemorySource(channels, "channels"))
        if len(calib) == 3:  # PyMca's energy axis, where the scan has a calibration
            parts.arrays(entries, f"{path}/energy", "energy",
                         MemorySource(energy_values(np.array(calib), channels), "energy"), ["npy", "txt"])
        ctime = self._per_analyser(b"CTIME")
        if ctime is not None and len(sp.numbers(ctime, 3)) == 3:
            for stem, value in zip(("preset_time", "live_time", "elapsed_time"), sp.numbers(ctime, 3)):
                parts.arrays(entries, f"{path}/{stem}", stem, MemorySource(np.array(value), stem))
        return entries

    def channels(self, nch: int) -> np.ndarray:
        """``#@CHANN n first last step`` as channel numbers, fitted to the spectrum (silx)."""
        text = self._per_analyser(b"CHANN")
        values = [int(v) for v in sp.numbers(text, 4) if np.isfinite(v)] if text is not None else []
        if len(values) == 4 and max(map(abs, values)) < 1 << 52:
            # never more than the spectrum holds, whatever the line declares
            first, last, step = values[1], values[2], values[3] or 1
            count = min(max((last - first) // step + 1, 0), nch) if nch else 0
            channels: np.ndarray = first + step * np.arange(count, dtype=np.int64)
        else:
            channels = np.arange(nch, dtype=np.int64)
        if len(channels) > 1 and nch > 0:
            if len(channels) > nch:
                channels = channels[:nch]
            elif len(channels) < nch:
                step = channels[1] - channels[0]
                channels = np.linspace(channels[0], channels[0] + step * nch, nch, endpoint=False)
        return channels


def sample_arrays(lines: list[bytes]) -> dict[str, np.ndarray]:
    """silx's ``sample/`` arrays: unit cell from ``#G1``, UB matrix from ``#G3`` (or psic's
    ``#UB`` when there is no usable ``#G3``); all zeros count as absent."""
    out: dict[str, np.ndarray] = {}
    cell = sp.numbers(sp.header_value(lines, b"G1") or b"", 6)
    if len(cell) == 6 and any(cell):
        arr = np.array(cell).reshape(1, 6)
        out.update(unit_cell=arr, unit_cell_abc=arr[0, :3].copy(), unit_cell_alphabetagamma=arr[0, 3:].copy())
    for key in (b"G3", b"UB"):
        ub = sp.numbers(sp.header_value(lines, key) or b"", 9)
        if len(ub) == 9 and any(ub):
            out["ub_matrix"] = np.array(ub).reshape(1, 3, 3)
            break
    return out


class SampleFolder(ScanSubfolder):
    """``sample/`` (NXsample): see :func:`sample_arrays`."""

    def load(self) -> Mapping[str, Node]:
        entries = Entries()
        for stem, value in sample_arrays(self.parts.scan.header_lines).items():
            self.parts.arrays(entries, f"sample/{stem}", stem, MemorySource(value, stem), ["npy", "txt"])
        return entries
