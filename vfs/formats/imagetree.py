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
module turns it into nodes: :class:`ImageTree` holds what all folders of one file share
(the model, its metadata, its detector data), and each folder of the picture is a small
class below whose ``load`` lists it, built only when someone looks inside.
:mod:`vfs.formats.imagemeta` sorts the header keys. Frame names have ``max(4, digits)`` digits so that they
sort. Header keys become ``user.<key>`` xattrs: frame 0's on the file's folder, frame
k's on ``frames/k.*``. Metadata values become typed arrays with one value per frame
(int64 or float64; several numbers per value give 2-D) or, when not numeric, text
with one line per frame. Keys become file names by :func:`vfs.naming.safe_name`.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol

import numpy as np

from vfs.arrays import ArraySource, MemorySource
from vfs.context import Context
from vfs.formats.edfparse import is_layout_key
from vfs.formats.imagemeta import UB_KEYS, Metadata, column, header_xattrs, sample_arrays
from vfs.identity import SourceIdentity
from vfs.limits import FRAME_INDEX_BYTES, METADATA_VALUE_BYTES
from vfs.logutil import log_once
from vfs.naming import safe_name
from vfs.nodes import BytesFile, Directory, Entries, Node, Symlink, XattrLoader, make_ino
from vfs.render.edf import FramewiseEdfRendering
from vfs.render.files import BrokenFile, RenderedFile, add_array_files, renderings_for
from vfs.render.npy import NpyRendering
from vfs.render.png import PngRendering
from vfs.render.txt import TxtRendering

__all__ = ["DETECTOR", "FramewiseEdfRendering", "ImageFolder", "ImageModel", "ImageTree", "ModelBase", "kept_keys"]

DETECTOR = "scan_0/instrument/detector_0"
ALL_FRAMES = 1 << 62  # ``per``: every image of a rendering has the same extra keys


class ModelBase:
    """What every image model records of its file: path, context, and the identities
    inode numbers (``fid``) and cache keys (``key``, which also changes with size and
    mtime) are made from, and the version raw reads check (``identity``)."""

    def __init__(self, kind: str, path: str, st: os.stat_result, ctx: Context) -> None:
        self.path = path
        self.ctx = ctx
        self.label = path
        self.mtime_ns = st.st_mtime_ns
        self.fid: tuple[object, ...] = (kind, st.st_dev, st.st_ino)
        self.identity = SourceIdentity.of(st)
        self.key: Hashable = (kind, *self.identity.key)


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


def kept_keys(keys: Mapping[str, str]) -> dict[str, str]:
    """The header keys an ``.edf`` rendering carries over (layout keys are rewritten)."""
    return {k: v for k, v in keys.items() if not is_layout_key(k)}


def nx_xattrs(**attrs: str) -> XattrLoader:
    """A loader of fixed ``user.<name>`` attributes (NX_class and friends)."""
    data = {f"user.{k}": v.encode() for k, v in attrs.items()}
    return lambda: data


class ImageTree:
    """What every folder of one image file shares; the metadata and the detector data
    are computed the first time a folder needs them."""

    def __init__(self, model: ImageModel) -> None:
        self.model = model
        self.mtime = model.mtime_ns
        self._meta: Metadata | None = None
        self._stack: tuple[ArraySource | str | None] | None = None

    @property
    def stack(self) -> ArraySource | str | None:
        """The detector data (all frames, or the one frame); None when frames differ."""
        if self._stack is None:
            self._stack = (self.model.stack_source(),)
        return self._stack[0]

    @property
    def meta(self) -> Metadata:
        if self._meta is None:
            self._meta = Metadata([self.model.header(k) for k in range(self.model.count())])
        return self._meta

    def ino(self, *path: object) -> int:
        return make_ino(*self.model.fid, *path)

    def folder(self, cls: type[ImageSubfolder], path: str, **attrs: str) -> ImageSubfolder:
        """A sub-folder called ``path`` (the inode's identity), listed by ``cls.load``."""
        return cls(self, path, nx_xattrs(**attrs))

    def detector_files(self) -> list[str]:
        """The names of the detector data's renderings (``data.npy`` ...)."""
        stack = self.stack
        if stack is None:
            return []
        suffixes = ["npy", "txt", "edf"] if isinstance(stack, str) else renderings_for(stack)
        return [f"data.{suffix}" for suffix in suffixes]

    def add_source_files(self, entries: Entries, stem: str, source: ArraySource | str, ident: tuple[object, ...],
                         extras: Callable[[int], Mapping[str, Any]], xattrs: XattrLoader | None = None,
                         per: int = 1) -> None:
        """``stem.npy``, ``stem.txt``, ``stem.edf`` and ``stem.png`` for a frame or a stack,
        rendered lazily.

        ``extras(i)`` gives the header keys of the i-th frame of the ``.edf`` rendering, the
        same for each run of ``per`` frames. A source that cannot be read (a string: the
        reason) gets files that answer EIO.
        """
        if isinstance(source, str):
            for suffix in ("npy", "txt", "edf"):
                entries.add(f"{stem}.{suffix}", BrokenFile(self.ino(*ident, suffix), self.mtime, source, xattrs))
            return
        makers: dict[str, Callable[[], Any]] = {
            "npy": functools.partial(NpyRendering, source),
            "txt": functools.partial(TxtRendering, source),
            "edf": functools.partial(FramewiseEdfRendering, source, extras, per),
            "png": functools.partial(PngRendering, source),
        }
        for suffix in renderings_for(source):
            entries.add(f"{stem}.{suffix}", RenderedFile(self.ino(*ident, suffix), self.mtime, makers[suffix], xattrs))

    def add_column(self, entries: Entries, name: str, values: list[str | None], group: str) -> None:
        """One metadata key's values (one per frame) as ``.npy``/``.txt``, or a text file."""
        arr = column(values)
        stem = safe_name(name)
        if arr is not None:
            add_array_files(entries, stem, MemorySource(arr, f"{self.model.label}:{name}"),
                            (*self.model.fid, group, name), self.mtime, suffixes=["npy", "txt"])
            return
        text = "".join(("" if v is None else v) + "\n" for v in values).encode("utf-8", "surrogateescape")
        entries.add(stem + ".txt", BytesFile(self.ino(group, name, "txt"), self.mtime, text))

    def add_links(self, entries: Entries, up: str) -> None:
        """``data.<suffix>`` links to each rendering of the detector data, ``up`` above it."""
        for name in self.detector_files():
            suffix = name.rsplit(".", 1)[1]
            entries.add(name, Symlink(self.ino(up, "data", suffix), self.mtime,
                                      f"{up}{DETECTOR.split('/', 1)[1]}/{name}"))


def frame_xattrs(model: ImageModel, k: int) -> Mapping[str, bytes]:
    return header_xattrs(model.header(k))


def frame_extras(model: ImageModel, k: int, _: int) -> Mapping[str, Any]:
    """The ``.edf`` header keys of frame ``k`` (the rendering of one frame asks for its 0th)."""
    return kept_keys(model.header(k))


class ImageFolder(Directory):
    """The folder of one image file (see the module docstring)."""

    def __init__(self, model: ImageModel, ino: int) -> None:
        super().__init__(ino, model.mtime_ns, xattrs=functools.partial(frame_xattrs, model, 0))
        self.model = model
        self.tree = ImageTree(model)

    def held_bytes(self) -> int:
        """Memory the file's model holds besides nodes, weighed with the file's folder in
        the bound on built nodes (``tree.DataFolder``): its frame index and, once built,
        the per-frame metadata."""
        frames = getattr(self.model, "indexed_frames", lambda: 0)()
        meta = self.tree._meta
        return frames * FRAME_INDEX_BYTES + (meta.values() * METADATA_VALUE_BYTES if meta is not None else 0)

    def load(self) -> Mapping[str, Node]:
        tree = self.tree
        entries = Entries()
        entries.add("header.txt", BytesFile(tree.ino("header.txt"), tree.mtime, self.model.header_text))
        if tree.stack is not None:
            entries.add("data.npy", Symlink(tree.ino("data.npy"), tree.mtime, f"{DETECTOR}/data.npy"))
        if self.model.count() > 1:
            entries.add("frames", tree.folder(FramesFolder, "frames"))
        entries.add("scan_0", tree.folder(ScanEntry, "scan_0", NX_class="NXentry", default="image"))
        return entries


class ImageSubfolder(Directory):
    """A folder below the file's folder; subclasses list it in :meth:`load`."""

    def __init__(self, tree: ImageTree, path: str, xattrs: XattrLoader) -> None:
        super().__init__(tree.ino(path), tree.mtime, xattrs=xattrs)
        self.tree = tree


class FramesFolder(ImageSubfolder):
    """``frames/``: one ``NNNN.npy|.txt|.edf`` per frame, ``max(4, digits)`` digits."""

    def load(self) -> Mapping[str, Node]:
        tree, model = self.tree, self.tree.model
        n = model.count()
        width = max(4, len(str(n - 1)))
        entries = Entries()
        for k in range(n):
            tree.add_source_files(entries, f"{k:0{width}d}", model.frame_source(k), ("frame", k),
                                  functools.partial(frame_extras, model, k),
                                  functools.partial(frame_xattrs, model, k), per=ALL_FRAMES)
        return entries


class ScanEntry(ImageSubfolder):
    """``scan_0/`` (NXentry)."""

    def load(self) -> Mapping[str, Node]:
        tree = self.tree
        entries = Entries()
        entries.add("instrument", tree.folder(InstrumentFolder, "scan_0/instrument", NX_class="NXinstrument"))
        entries.add("measurement", tree.folder(MeasurementFolder, "scan_0/measurement", NX_class="NXcollection"))
        entries.add("image", tree.folder(ImageData, "scan_0/image", NX_class="NXdata", interpretation="image",
                                         signal="data"))
        if UB_KEYS <= set(tree.model.header(0)):
            entries.add("sample", tree.folder(SampleFolder, "scan_0/sample", NX_class="NXsample"))
        return entries


class InstrumentFolder(ImageSubfolder):
    """``instrument/`` (NXinstrument): positioners, file, detector_0."""

    def load(self) -> Mapping[str, Node]:
        tree = self.tree
        entries = Entries()
        entries.add("positioners", tree.folder(PositionersFolder, "scan_0/instrument/positioners",
                                               NX_class="NXpositioner"))
        entries.add("file", tree.folder(FileFolder, "scan_0/instrument/file", NX_class="NXcollection"))
        entries.add("detector_0", tree.folder(DetectorFolder, DETECTOR, NX_class="NXdetector"))
        return entries


class ColumnsFolder(ImageSubfolder):
    """A folder of metadata columns: one array (or text) per key, one value per frame."""

    group = ""

    def columns(self) -> dict[str, list[str | None]]:
        raise NotImplementedError

    def load(self) -> Mapping[str, Node]:
        entries = Entries()
        for name, values in self.columns().items():
            self.tree.add_column(entries, name, values, self.group)
        return entries


class PositionersFolder(ColumnsFolder):
    """``positioners/``: one array per ``motor_mne`` name."""

    group = "positioner"

    def columns(self) -> dict[str, list[str | None]]:
        return self.tree.meta.positioners


class OthersFolder(ColumnsFolder):
    """``detector_0/others/``: one array per header key silx does not sort elsewhere."""

    group = "other"

    def columns(self) -> dict[str, list[str | None]]:
        return self.tree.meta.others


class FileFolder(ImageSubfolder):
    """``file/scan_header.txt``: every frame's keys as ``key: value`` lines."""

    def load(self) -> Mapping[str, Node]:
        tree = self.tree
        entries = Entries()
        entries.add("scan_header.txt", BytesFile(tree.ino("scan_header"), tree.mtime,
                                                 functools.partial(scan_header_text, tree.model)))
        return entries


def scan_header_text(model: ImageModel) -> bytes:
    """Every frame's keys as ``key: value`` lines, frames separated by a blank line
    (computed when read, not kept: see ``nodes.TEXTS``)."""
    frames = ("\n".join(f"{key}: {value}" for key, value in model.header(k).items()) for k in range(model.count()))
    return ("\n\n".join(frames) + "\n").encode("utf-8", "surrogateescape")


class DetectorFolder(ImageSubfolder):
    """``detector_0/``: the detector data as ``data.npy|.txt|.edf``, and ``others/``."""

    def load(self) -> Mapping[str, Node]:
        tree, model = self.tree, self.tree.model
        entries = Entries()
        stack = tree.stack
        if stack is not None:
            # the .edf rendering has prod(shape[:-2]) frames: several per EDF frame with Dim_3
            per = 1 if isinstance(stack, str) else max(math.prod(stack.shape[:-2]) // max(model.count(), 1), 1)
            tree.add_source_files(entries, "data", stack, ("data",), lambda i: kept_keys(model.header(i // per)),
                                  nx_xattrs(interpretation="image"), per)
        entries.add("others", tree.folder(OthersFolder, f"{DETECTOR}/others"))
        return entries


class MeasurementFolder(ImageSubfolder):
    """``measurement/``: ``image_0/`` (links to the detector) and one array per counter."""

    def load(self) -> Mapping[str, Node]:
        tree = self.tree
        counters = tree.meta.counters
        entries = Entries()
        image = next(f"image_{i}" for i in range(len(counters) + 1) if f"image_{i}" not in counters)
        entries.add(image, tree.folder(MeasurementImage, f"scan_0/measurement/{image}"))
        for name, values in counters.items():
            tree.add_column(entries, name, values, "counter")
        return entries


class MeasurementImage(ImageSubfolder):
    """``measurement/image_0/``: ``data.*`` and ``info`` link to ``detector_0``."""

    def load(self) -> Mapping[str, Node]:
        entries = Entries()
        self.tree.add_links(entries, "../../")
        entries.add("info", Symlink(self.tree.ino("image_0", "info"), self.tree.mtime, "../../instrument/detector_0"))
        return entries


class ImageData(ImageSubfolder):
    """``image/`` (NXdata): ``data.*`` link to ``detector_0``."""

    def load(self) -> Mapping[str, Node]:
        entries = Entries()
        self.tree.add_links(entries, "../")
        return entries


def sample_arrays_or_log(tree: ImageTree) -> dict[str, np.ndarray]:
    """:func:`~vfs.formats.imagemeta.sample_arrays` of frame 0; {} (logged once) when unreadable."""
    try:
        return sample_arrays(tree.model.header(0))
    except (KeyError, TypeError, ValueError) as exc:
        label = tree.model.label
        log_once(f"ub:{label}", f"{label}: UB/sample keys unreadable: {exc}")
        return {}


class SampleFolder(ImageSubfolder):
    """``sample/`` (NXsample): unit cell and UB matrix from ``UB_*``/``sample_*`` keys."""

    def load(self) -> Mapping[str, Node]:
        tree = self.tree
        entries = Entries()
        for name, arr in sample_arrays_or_log(tree).items():
            add_array_files(entries, name, MemorySource(arr, f"{tree.model.label}:{name}"),
                            (*tree.model.fid, "sample", name), tree.mtime, suffixes=["npy", "txt"])
        return entries
