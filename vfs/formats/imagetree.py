"""The folder an image file (EDF, or any format fabio reads) shows: one tree for all.

::

    image.edf/
      header.txt              every frame's header as written
      data.npy -> scan_0/instrument/detector_0/data.npy
      frames/0000.npy .txt .edf ...        (files of two or more frames)
      scan_0/                              silx's tree for fabio images (fabioh5)
        instrument/detector_0/data.npy .txt .edf, others/<key>.npy|.txt
        instrument/positioners/<motor>     motor_mne / motor_pos
        instrument/file/scan_header.txt
        measurement/<counter>              counter_mne / counter_pos
        measurement/image_0/data.* -> ../../instrument/detector_0/data.*, info -> ...
        image/data.* -> ../instrument/detector_0/data.*          (NXdata)
        sample/ub_matrix ...               where UB_mne/UB_pos/sample_mne/sample_pos exist

A backend supplies an :class:`ImageModel` (frames, headers, array sources); this
module turns it into nodes. Frame names have ``max(4, digits)`` digits so that they
sort. Header keys become ``user.<key>`` xattrs: frame 0's on the file's folder, frame
k's on ``frames/k.*``. Metadata values become typed arrays with one value per frame
(int64 or float64; several numbers per value give 2-D) or, when not numeric, text
with one line per frame. A ``/`` in a key becomes ``%`` in file names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from vfs.arrays import ArraySource, MemorySource
from vfs.formats.edfparse import FABIO_RESERVED, is_layout_key
from vfs.logutil import log_once
from vfs.nodes import BytesFile, Directory, Entries, File, Node, Symlink, make_ino
from vfs.render import Rendering
from vfs.render.edf import EdfRendering, edf_header, edf_supported
from vfs.render.files import BrokenFile, add_array_files
from vfs.render.npy import NpyRendering, npy_supported
from vfs.render.png import PngRendering, png_supported
from vfs.render.txt import TxtRendering, txt_supported

DETECTOR = "scan_0/instrument/detector_0"
MAX_XATTR_VALUE = 65536
MAX_XATTR_LIST = 65536


class ImageModel(Protocol):
    """What the tree needs from an image file."""

    label: str
    fid: tuple[object, ...]  # identifies the file for inode numbers
    mtime_ns: int

    def count(self) -> int: ...

    def header(self, k: int) -> dict[str, str]: ...

    def header_text(self) -> bytes: ...

    def frame_source(self, k: int) -> ArraySource | str: ...

    def stack_source(self) -> ArraySource | str | None: ...


def file_name(key: str) -> str:
    """A header key as a file name: ``/`` -> ``%``, NUL dropped, never empty."""
    return key.replace("/", "%").replace("\0", "") or "_"


def header_xattrs(keys: Mapping[str, str]) -> dict[str, bytes]:
    """``user.<key>`` for each header key that fits the kernel's xattr limits (names of
    255 bytes, values of 64 KiB, 64 KiB for the list of names)."""
    out = {}
    listed = 0
    for key, value in keys.items():
        name = "user." + key.replace("\0", "")
        size = len(name.encode("utf-8", "surrogateescape")) + 1
        data = value.encode("utf-8", "surrogateescape")
        if size <= 256 and len(data) <= MAX_XATTR_VALUE and listed + size <= MAX_XATTR_LIST:
            out[name] = data
            listed += size
    return out


def nx_xattrs(**attrs: str) -> Callable[[], dict[str, bytes]]:
    return lambda: {f"user.{k}": v.encode() for k, v in attrs.items()}


class LazyFile(File):
    """A rendered file whose rendering is made on first use (frames/ may hold 60,000)."""

    def __init__(self, ino: int, mtime_ns: int, make: Callable[[], Rendering],
                 xattrs: Callable[[], Mapping[str, bytes]] | None = None) -> None:
        super().__init__(ino, mtime_ns, xattrs)
        self._make = make
        self._rendering: Rendering | None = None

    @property
    def rendering(self) -> Rendering:
        if self._rendering is None:
            self._rendering = self._make()
        return self._rendering

    @property
    def size(self) -> int:
        return self.rendering.size

    def read(self, offset: int, size: int) -> bytes:
        return self.rendering.read(offset, size)


class FramewiseEdfRendering(EdfRendering):
    """An ``.edf`` rendering whose frames each carry their own header keys."""

    def __init__(self, source: ArraySource, extras: Callable[[int], Mapping[str, Any]]) -> None:
        self.extras = extras
        super().__init__(source, extra={}, max_value=None)
        self.header_size = max((len(self._raw_header(k)) for k in range(self.nframes)), default=self.header_size)

    def _raw_header(self, k: int) -> bytes:
        return edf_header(self.frame_shape, self.source.dtype, k + 1, self.extras(k), max_value=None)

    def header(self, k: int) -> bytes:
        head = self._raw_header(k)
        if len(head) < self.header_size:
            head = head[:-2] + b" " * (self.header_size - len(head)) + b"}\n"
        return head


def kept_keys(keys: Mapping[str, str]) -> dict[str, str]:
    """The header keys an ``.edf`` rendering carries over (layout keys are rewritten)."""
    return {k: v for k, v in keys.items() if not is_layout_key(k)}


_SUFFIXES: dict[tuple[str, int, bool], list[str]] = {}


def suffixes_for(source: ArraySource) -> list[str]:
    """The renderings an array gets (memoised: frames/ asks 20,000 times)."""
    png = png_supported(source.shape, source.dtype)
    key = (source.dtype.str, min(len(source.shape), 2), png)
    if key not in _SUFFIXES:
        _SUFFIXES[key] = [name for name, ok in (("npy", npy_supported(source.dtype)),
                                                 ("txt", txt_supported(source.dtype)),
                                                 ("edf", edf_supported(source)),
                                                 ("png", png)) if ok]
    return _SUFFIXES[key]


def add_source_files(entries: Entries, stem: str, source: ArraySource | str, model: ImageModel,
                     ident: tuple[object, ...], extras: Callable[[int], Mapping[str, Any]],
                     xattrs: Callable[[], Mapping[str, bytes]] | None = None) -> list[str]:
    """``stem.npy``, ``stem.txt``, ``stem.edf`` and ``stem.png`` for a frame or a stack
    (rendered lazily).

    ``extras(i)`` gives the header keys of the i-th frame of the ``.edf`` rendering. A
    source that cannot be read (a string: the reason) gets files that answer EIO.
    """
    mtime = model.mtime_ns
    if isinstance(source, str):
        return [entries.add(f"{stem}.{suffix}", BrokenFile(make_ino(*ident, suffix), mtime, source, xattrs))
                for suffix in ("npy", "txt", "edf")]
    src = source
    makers: dict[str, Callable[[], Rendering]] = {
        "npy": lambda: NpyRendering(src),
        "txt": lambda: TxtRendering(src),
        "edf": lambda: FramewiseEdfRendering(src, extras),
        "png": lambda: PngRendering(src),
    }
    return [entries.add(f"{stem}.{suffix}", LazyFile(make_ino(*ident, suffix), mtime, makers[suffix], xattrs))
            for suffix in suffixes_for(src)]


# -- metadata columns ----------------------------------------------------------------------
_INT = re.compile(r"[+-]?\d+\Z")


def column(values: list[str | None]) -> np.ndarray | None:
    """One value per frame as int64 or float64 (2-D for several numbers), or None for text.

    A frame without the key gets 0 (integers) or NaN (floats).
    """
    present = [v.split() for v in values if v is not None]
    if not present or not present[0] or any(len(t) != len(present[0]) for t in present):
        return None
    width = len(present[0])
    flat = [t for row in present for t in row]
    try:
        if all(_INT.match(t) for t in flat) and all(abs(int(t)) < 2**63 for t in flat):
            arr = np.array([[int(t) for t in v.split()] if v is not None else [0] * width for v in values], np.int64)
        else:
            arr = np.array([[float(t) for t in v.split()] if v is not None else [np.nan] * width for v in values],
                           np.float64)
    except ValueError:
        return None
    return arr[:, 0] if width == 1 else arr


def add_column(entries: Entries, name: str, values: list[str | None], model: ImageModel,
               ident: tuple[object, ...]) -> None:
    arr = column(values)
    if arr is not None:
        add_array_files(entries, file_name(name), MemorySource(arr, f"{model.label}:{name}"),
                        (*ident, name), model.mtime_ns, suffixes=["npy", "txt"])
        return
    text = "".join(("" if v is None else v) + "\n" for v in values).encode("utf-8", "surrogateescape")
    entries.add(file_name(name) + ".txt", BytesFile(make_ino(*ident, name, "txt"), model.mtime_ns, text))


def _pairs(keys: Mapping[str, str], base: str) -> dict[str, str | None]:
    names = keys.get(f"{base}_mne", "").split()
    values = keys.get(f"{base}_pos", "").split()
    return {n: (values[i] if i < len(values) else None) for i, n in enumerate(names)}


class Metadata:
    """Header keys of every frame sorted the way silx sorts them (built once, lazily)."""

    def __init__(self, model: ImageModel) -> None:
        n = model.count()
        self.others: dict[str, list[str | None]] = {}
        self.positioners: dict[str, list[str | None]] = {}
        self.counters: dict[str, list[str | None]] = {}
        self.scan_header: list[str] = []
        for k in range(n):
            keys = model.header(k)
            self.scan_header.append("\n".join(f"{key}: {value}" for key, value in keys.items()))
            caught: set[str] = set()
            for base, target in (("motor", self.positioners), ("counter", self.counters)):
                if f"{base}_mne" in keys and f"{base}_pos" in keys:
                    caught |= {f"{base}_mne", f"{base}_pos"}
                    for name, value in _pairs(keys, base).items():
                        target.setdefault(name, [None] * n)[k] = value
            for key, value in keys.items():
                if key not in caught and key.upper() not in FABIO_RESERVED:
                    self.others.setdefault(key, [None] * n)[k] = value


# -- folders -------------------------------------------------------------------------------
class ImageFolder(Directory):
    """The folder of one image file (see the module docstring)."""

    def __init__(self, model: ImageModel, ino: int) -> None:
        super().__init__(ino, model.mtime_ns, xattrs=lambda: header_xattrs(model.header(0)))
        self.model = model
        self._meta: Metadata | None = None
        self._stack: tuple[ArraySource | str | None] | None = None

    @property
    def stack(self) -> ArraySource | str | None:
        """The detector data (all frames, or the one frame); None when frames differ."""
        if self._stack is None:
            self._stack = (self.model.stack_source(),)
        return self._stack[0]

    def meta(self) -> Metadata:
        if self._meta is None:
            self._meta = Metadata(self.model)
        return self._meta

    def ident(self, *path: object) -> tuple[object, ...]:
        return (*self.model.fid, *path)

    def folder(self, path: str, loader: Callable[[], Mapping[str, Node]], **attrs: str) -> Directory:
        return Directory(make_ino(*self.ident(path)), self.model.mtime_ns, loader, nx_xattrs(**attrs))

    def load(self) -> Mapping[str, Node]:
        model = self.model
        n = model.count()
        entries = Entries()
        entries.add("header.txt", BytesFile(make_ino(*self.ident("header.txt")), model.mtime_ns, model.header_text))
        if self.stack is not None:
            entries.add("data.npy", Symlink(make_ino(*self.ident("data.npy")), model.mtime_ns, f"{DETECTOR}/data.npy"))
        if n > 1:
            entries.add("frames", self.folder("frames", self._frames))
        entries.add("scan_0", self.folder("scan_0", self._scan, NX_class="NXentry", default="image"))
        return entries

    def _frames(self) -> Mapping[str, Node]:
        model = self.model
        n = model.count()
        width = max(4, len(str(n - 1)))
        entries = Entries()
        for k in range(n):
            stem = f"{k:0{width}d}"
            self._add_frame(entries, stem, k)
        return entries

    def _add_frame(self, entries: Entries, stem: str, k: int) -> None:
        model = self.model

        def extras(_: int) -> Mapping[str, Any]:
            return kept_keys(model.header(k))

        def xattrs() -> Mapping[str, bytes]:
            return header_xattrs(model.header(k))

        add_source_files(entries, stem, model.frame_source(k), model, self.ident("frame", k), extras, xattrs)

    # scan_0 and below ------------------------------------------------------------------
    def _links(self, entries: Entries, stem: str, up: str) -> None:
        """Links ``stem.<suffix>`` to each rendering of the detector data."""
        if self.stack is None:
            return
        for name in self._detector_files():
            suffix = name.rsplit(".", 1)[1]
            entries.add(f"{stem}.{suffix}", Symlink(make_ino(*self.ident(up, stem, suffix)), self.model.mtime_ns,
                                                    f"{up}{DETECTOR.split('/', 1)[1]}/{name}"))

    def _detector_files(self) -> list[str]:
        stack = self.stack
        if stack is None:
            return []
        if isinstance(stack, str):
            return ["data.npy", "data.txt", "data.edf"]
        return [f"data.{suffix}" for suffix in suffixes_for(stack)]

    def _scan(self) -> Mapping[str, Node]:
        entries = Entries()
        entries.add("instrument", self.folder("scan_0/instrument", self._instrument, NX_class="NXinstrument"))
        entries.add("measurement", self.folder("scan_0/measurement", self._measurement, NX_class="NXcollection"))
        entries.add("image", self.folder("scan_0/image", self._image, NX_class="NXdata", interpretation="image",
                                         signal="data"))
        if _ub_keys(self.model.header(0)):
            entries.add("sample", self.folder("scan_0/sample", self._sample, NX_class="NXsample"))
        return entries

    def _instrument(self) -> Mapping[str, Node]:
        entries = Entries()
        entries.add("positioners", self.folder("scan_0/instrument/positioners", self._positioners,
                                               NX_class="NXpositioner"))
        entries.add("file", self.folder("scan_0/instrument/file", self._file, NX_class="NXcollection"))
        entries.add("detector_0", self.folder(DETECTOR, self._detector, NX_class="NXdetector"))
        return entries

    def _positioners(self) -> Mapping[str, Node]:
        entries = Entries()
        for name, values in self.meta().positioners.items():
            add_column(entries, name, values, self.model, self.ident("positioner"))
        return entries

    def _file(self) -> Mapping[str, Node]:
        entries = Entries()
        text = "\n\n".join(self.meta().scan_header) + "\n"
        entries.add("scan_header.txt", BytesFile(make_ino(*self.ident("scan_header")), self.model.mtime_ns,
                                                 text.encode("utf-8", "surrogateescape")))
        return entries

    def _detector(self) -> Mapping[str, Node]:
        entries = Entries()
        stack, model = self.stack, self.model
        if stack is not None:
            # the .edf rendering has prod(shape[:-2]) frames: several per EDF frame with Dim_3
            per = 1 if isinstance(stack, str) else max(math.prod(stack.shape[:-2]) // max(model.count(), 1), 1)
            add_source_files(entries, "data", stack, model, self.ident("data"),
                             lambda i: kept_keys(model.header(i // per)), nx_xattrs(interpretation="image"))
        entries.add("others", self.folder(f"{DETECTOR}/others", self._others))
        return entries

    def _others(self) -> Mapping[str, Node]:
        entries = Entries()
        for name, values in self.meta().others.items():
            add_column(entries, name, values, self.model, self.ident("other"))
        return entries

    def _measurement(self) -> Mapping[str, Node]:
        counters = self.meta().counters
        entries = Entries()
        image = next(f"image_{i}" for i in range(len(counters) + 1) if f"image_{i}" not in counters)
        entries.add(image, self.folder(f"scan_0/measurement/{image}", self._image_group))
        for name, values in counters.items():
            add_column(entries, name, values, self.model, self.ident("counter"))
        return entries

    def _image_group(self) -> Mapping[str, Node]:
        entries = Entries()
        self._links(entries, "data", "../../")
        entries.add("info", Symlink(make_ino(*self.ident("image_0", "info")), self.model.mtime_ns,
                                    "../../instrument/detector_0"))
        return entries

    def _image(self) -> Mapping[str, Node]:
        entries = Entries()
        self._links(entries, "data", "../")
        return entries

    def _sample(self) -> Mapping[str, Node]:
        entries = Entries()
        keys = self.model.header(0)
        try:
            ub, sample = _pairs(keys, "UB"), _pairs(keys, "sample")
            abc = np.array([sample["U0"], sample["U1"], sample["U2"]], dtype=float)
            angles = np.array([sample["U3"], sample["U4"], sample["U5"]], dtype=float)
            matrix = np.array([[[ub[f"UB{3 * i + j}"] for j in range(3)] for i in range(3)]], dtype=float)
        except (KeyError, TypeError, ValueError) as exc:
            log_once(f"ub:{self.model.label}", f"{self.model.label}: UB/sample keys unreadable: {exc}")
            return entries
        arrays = {"unit_cell_abc": abc, "unit_cell_alphabetagamma": angles,
                  "unit_cell": np.concatenate([abc, angles])[None, :], "ub_matrix": matrix}
        for name, arr in arrays.items():
            add_array_files(entries, name, MemorySource(arr, f"{self.model.label}:{name}"),
                            self.ident("sample", name), self.model.mtime_ns, suffixes=["npy", "txt"])
        return entries


def _ub_keys(keys: Mapping[str, str]) -> bool:
    return {"UB_mne", "UB_pos", "sample_mne", "sample_pos"} <= set(keys)
