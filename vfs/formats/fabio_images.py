"""Other image formats fabio reads (CBF, TIFF, MarCCD, ADSC/d*TREK, Pilatus, Bruker,
mar345, ...) as the same folder as an EDF file. Switched on by ``--formats fabio``;
without it these files stay plain files.

These formats are read through fabio, one frame at a time: the first listing opens
the file and reads each frame's header, shape and type (fabio loads each frame's data
on the way; those arrays go straight into the shared chunk cache, so the first read
after the listing costs nothing), and later reads load frame k through fabio again
only when the cache has let it go. ``header.txt`` shows fabio's header of each frame as
``key = value ;`` lines, since these formats have no EDF-style text header.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Hashable
from typing import Any

import numpy as np

from vfs.arrays import ArraySource, ChunkedSource
from vfs.context import Context
from vfs.errors import Unreadable
from vfs.formats import sniff
from vfs.formats.imagetree import ImageFolder, ModelBase, kept_keys
from vfs.nodes import Directory
from vfs.selection import Index

COMPRESSED = (".gz", ".bz2", ".xz", ".lzma")
#: fabio formats this backend never takes: shown by other backends, or not images.
EXCLUDED = {"edf", "hdf5", "eiger", "lima", "sparse", "lambda", "numpy", "eiger/lima/sparse/hdf5/lambda"}
#: Magic numbers too short or common to trust without the format's extension.
WEAK = {"xsd": {"xsd"}, "kcd": {"kcd"}, "GE": set(), "OXD": {"img"}, "HiPiC": {"img"}, "dm3": {"dm3"},
        "mar345": {"mar2300", "mar1200", "mar1600", "mar2000", "mar3450", "mar3000", "mar2400", "mar1800"},
        "pixi": set(), "fit2dmask": {"msk"}}
#: Extensions taken on their own (no magic number matched).
EXTENSIONS = {"cbf", "tif", "tiff", "mccd", "sfrm", "gfrm", "img", "pnm", "pgm", "pbm", "dm3", "kcd", "msk", "mrc",
              "fei", "mpa", "esper", "f2d", "spr", "jp2", "j2k", "jpg", "jpeg", *WEAK["mar345"]}


def _extension(path: str) -> str:
    name = os.path.basename(path).lower()
    for comp in COMPRESSED:
        if name.endswith(comp):
            name = name[: -len(comp)]
    return name.rpartition(".")[2] if "." in name else ""


def accepts(path: str, ctx: Context) -> bool:
    """Whether fabio would read this file as an image (magic number, else extension)."""
    try:
        head = sniff.read_head(path, 64)
    except OSError:
        return False
    if head.startswith(sniff.HDF5_SIGNATURE):
        return False
    inner = sniff.decompressed_head(path, head)
    if inner is not None:
        head = inner
    ext = _extension(path)
    fmt: str | None = None
    try:
        from fabio.openimage import _do_magic  # fabio's own magic-number table

        fmt = _do_magic(head[:18], os.path.basename(path))
    except Exception:  # no match (or a fabio without it): the extension decides
        fmt = None
    if fmt in EXCLUDED:
        return False
    if fmt is not None and fmt not in WEAK:
        return True
    if fmt is not None:
        return ext in WEAK[fmt]
    return ext in EXTENSIONS


class FabioModel(ModelBase):
    """An image file read through fabio (see ImageModel)."""

    def __init__(self, path: str, st: os.stat_result, ctx: Context) -> None:
        super().__init__("fabio", path, st, ctx)
        self._frames: list[tuple[tuple[int, ...], np.dtype[Any], dict[str, str]]] | None = None
        self._lock = threading.Lock()

    def _open(self) -> Any:
        import fabio

        logging.getLogger("fabio").setLevel(logging.ERROR)
        return fabio.open(self.path)

    def _frame_data(self, img: Any, k: int) -> np.ndarray:
        frame = img if img.nframes == 1 else img.getframe(k)
        return np.ascontiguousarray(frame.data)

    def frames(self) -> list[tuple[tuple[int, ...], np.dtype[Any], dict[str, str]]]:
        """Shape, dtype and header of every frame (read once)."""
        with self._lock:
            if self._frames is None:
                out = []
                with self._open() as img:
                    for k in range(img.nframes):
                        frame = img if img.nframes == 1 else img.getframe(k)
                        data = np.ascontiguousarray(frame.data)
                        header = {str(key): " ".join(str(value).split("\n")) for key, value in frame.header.items()}
                        out.append((data.shape, data.dtype, header))
                        self.ctx.cache.get(self.frame_key(k), lambda d=data: d, self.label)  # type: ignore[misc]
                self._frames = out
            return self._frames

    def frame_key(self, k: int) -> Hashable:
        """Where frame k's data live in the shared cache (the listing puts them there)."""
        return (self.key, "frame", k)

    def load_frame(self, k: int) -> np.ndarray:
        with self._open() as img:
            return self._frame_data(img, k)

    # -- ImageModel ----------------------------------------------------------------------
    def count(self) -> int:
        return len(self.frames())

    def header(self, k: int) -> dict[str, str]:
        return self.frames()[k][2]

    def header_text(self) -> bytes:
        blocks = []
        for _, _, header in self.frames():
            lines = "".join(f"{key} = {value} ;\n" for key, value in header.items())
            blocks.append("{\n" + lines + "}\n")
        return "".join(blocks).encode("utf-8", "surrogateescape")

    def frame_source(self, k: int) -> ArraySource | str:
        shape, dtype, header = self.frames()[k]
        return FabioFrames(self, [k], shape, dtype, False, kept_keys(header))

    def stack_source(self) -> ArraySource | str | None:
        frames = self.frames()
        if len(frames) == 1:
            return self.frame_source(0)
        shape, dtype, header = frames[0]
        if any(s != shape or d != dtype for s, d, _ in frames):
            return None
        return FabioFrames(self, list(range(len(frames))), shape, dtype, True, kept_keys(header))


class FabioFrames(ChunkedSource):
    """One frame, or all frames stacked; each chunk is one frame loaded through fabio,
    cached under the model's frame key, so the frames the listing read are hits."""

    def __init__(self, model: FabioModel, frames: list[int], shape: tuple[int, ...], dtype: np.dtype[Any],
                 stacked: bool, attrs: dict[str, str]) -> None:
        full = (len(frames), *shape) if stacked else shape
        chunks = (1, *shape) if stacked else shape
        super().__init__(full, dtype, chunks, f"{model.label}[{'stack' if stacked else frames[0]}]",
                         (model.key, "frames"), model.ctx.cache, attrs)
        self.model = model
        self.frames = frames
        self.stacked = stacked

    def _frame(self, index: Index) -> int:
        return self.frames[index[0]] if self.stacked else self.frames[0]

    def chunk_key(self, index: Index) -> Hashable:
        return self.model.frame_key(self._frame(index))

    def load_chunk(self, index: Index) -> np.ndarray:
        return self.model.load_frame(self._frame(index))

    def chunk(self, index: Index, keep: frozenset[Hashable] | None = None) -> np.ndarray:
        data = super().chunk(index, keep)
        if data.shape != tuple(self.chunks[1:] if self.stacked else self.chunks) or data.dtype != self.dtype:
            raise Unreadable(f"{self.label}: frame {self._frame(index)} changed shape or type")
        return data[None] if self.stacked else data


def probe(path: str, ctx: Context) -> None:
    """Raise unless fabio can read the file's header."""
    import fabio

    logging.getLogger("fabio").setLevel(logging.ERROR)
    fabio.openheader(path)


def open_folder(path: str, st: os.stat_result, ctx: Context, ino: int) -> Directory:
    return ImageFolder(FabioModel(path, st, ctx), ino)
