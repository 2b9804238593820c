"""``.png`` previews of image-like arrays, with their size known before anything is drawn.

``ls -l`` needs a size, and a folder of 1,000 images must list without drawing 1,000
pictures. So a preview is an 8-bit greyscale PNG whose pixel data are stored, not
compressed (zlib "stored" blocks): its byte size is arithmetic on the picture's width and
height, which depend only on the array's shape and item size (see :func:`plan`). The
picture is drawn the first time the file is read and kept in the shared chunk cache.
A fixed-size ``tEXt`` chunk (``Description``, padded with spaces) says what was read.

The rule (docs/layout.md, "Preview pictures"):

* the image is the last two axes; of a stack (3-D and more), the first frame (index 0
  on every leading axis); of a 3-D XRF cube (:func:`is_cube`), the sum over the last
  (channel) axis;
* rows and columns are taken every ``s``-th, ``s = ceil(max(height, width) / 1024)``,
  raised until the rows read (whole, all channels for a cube) fit
  :data:`~vfs.limits.PREVIEW_READ_BUDGET`;
* a cube for which that would leave fewer than 128 pixels on the longer side is drawn
  from a sparse grid of spectra instead (128 pixels on the longer side), each reading
  only a block of channels around the brightest channel of a sampled sum spectrum;
* grey level ``round(255 * (v - lo) / (hi - lo))`` clipped to 0..255, where ``lo`` and
  ``hi`` are the 0.5th and 99.5th percentiles of the finite values drawn; NaN and
  infinities are 0; when ``hi == lo``, values above ``lo`` are 255 and the rest 0.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vfs.arrays import ArraySource
from vfs.cache import ChunkCache
from vfs.limits import PREVIEW_READ_BUDGET

#: the longest side of a preview, in pixels
MAX_SIDE = 1024
#: the longest side of a cube preview drawn from a sparse grid of spectra (each a read of
#: its own: 128 x 128 reads take about a second), and the side below which strided whole
#: rows give way to that grid
COARSE_SIDE = 128
#: spectra summed to find the brightest channel of a large cube (a grid of this many a side)
PROBE_SIDE = 32
#: rows read at once when every row is kept (bounds the memory a preview takes)
BAND_BYTES = 16 << 20
#: percentiles that set black and white
LOW_PERCENTILE, HIGH_PERCENTILE = 0.5, 99.5
#: bytes of the Description text (padded with spaces, so the size is known up front)
TEXT_BYTES = 480
_STORED_BLOCK = 65535
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_KEYS = itertools.count()
#: previews of sources that bring no cache of their own (kept small)
FALLBACK_CACHE = ChunkCache(64 << 20)


def png_supported(shape: tuple[int, ...], dtype: np.dtype[Any]) -> bool:
    """Whether an array gets a preview: 2-D or more, numeric, not empty, and one row of
    the image fits the read budget."""
    if len(shape) < 2 or dtype.kind not in "biuf" or dtype.names or 0 in shape:
        return False
    return shape[-1] * dtype.itemsize <= PREVIEW_READ_BUDGET


def is_cube(shape: tuple[int, ...], attrs: Mapping[str, Any]) -> bool:
    """Whether a 3-D array is an XRF cube (height, width, channels) rather than a stack of
    frames: its ``interpretation`` attribute says ``spectrum`` (NeXus; any other value
    means frames), or, without that attribute, its last axis is longer than each of the
    other two and either a power of two of at least 256 (MCA channel counts: 1024, 2048,
    4096) or at least 4 times as long. Detector frames are rarely both wider than tall
    and a power of two wide (Pilatus 487, Eiger 1030 and square frames are not); a stack
    of such frames, fewer than they are wide, is shown summed unless ``interpretation``
    says ``image``."""
    if len(shape) != 3:
        return False
    interp = attrs.get("interpretation")
    if isinstance(interp, (bytes, np.bytes_)):
        interp = bytes(interp).decode("utf-8", "replace")
    if isinstance(interp, str):
        return interp.strip().lower() == "spectrum"
    longest = max(shape[0], shape[1])
    power_of_two = shape[2] >= 256 and shape[2] & (shape[2] - 1) == 0
    return shape[2] > longest and (power_of_two or shape[2] >= 4 * longest)


@dataclass(frozen=True)
class Plan:
    """What a preview reads and how big it is, from shape and item size alone."""

    mode: str  # "frame", "cube" (all channels of strided rows) or "coarse" (sparse spectra)
    step: int
    height: int
    width: int


def plan(shape: tuple[int, ...], itemsize: int, cube: bool, budget: int = PREVIEW_READ_BUDGET) -> Plan:
    """The preview's mode, stride and picture size (see the module docstring)."""
    h, w = (shape[0], shape[1]) if cube else (shape[-2], shape[-1])
    row_bytes = w * itemsize * (shape[2] if cube else 1)
    step = max(math.ceil(max(h, w) / MAX_SIDE), 1)
    rows_fit = max(budget // max(row_bytes, 1), 1)
    mode = "cube" if cube else "frame"
    if math.ceil(h / step) > rows_fit:
        step_rows = math.ceil(h / rows_fit)
        if cube and math.ceil(max(h, w) / step_rows) < COARSE_SIDE:
            mode = "coarse"
            step = max(step, math.ceil(max(h, w) / COARSE_SIDE))
        else:
            step = step_rows
    return Plan(mode, step, math.ceil(h / step), math.ceil(w / step))


def png_size(width: int, height: int, channels: int = 1) -> int:
    """Bytes of an 8-bit PNG with stored (uncompressed) pixel data and one text chunk."""
    raw = height * (1 + width * channels)
    blocks = max(math.ceil(raw / _STORED_BLOCK), 1)
    idat = 2 + raw + 5 * blocks + 4
    text = len(b"Description") + 1 + TEXT_BYTES
    return len(_SIGNATURE) + (12 + 13) + (12 + text) + (12 + idat) + 12


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(pixels: np.ndarray, description: str) -> bytes:
    """An 8-bit greyscale (2-D) or RGB (3-D) PNG of ``pixels``, stored uncompressed, so
    that its size is :func:`png_size` exactly."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = np.zeros((height, 1 + width * channels), np.uint8)  # filter byte 0 per row
    rows[:, 1:] = pixels.reshape(height, width * channels)
    raw = rows.tobytes()
    parts = [b"\x78\x01"]
    for start in range(0, max(len(raw), 1), _STORED_BLOCK):
        block = raw[start : start + _STORED_BLOCK]
        final = 1 if start + _STORED_BLOCK >= len(raw) else 0
        parts.append(struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF) + block)
    parts.append(struct.pack(">I", zlib.adler32(raw)))
    text = description.encode("latin-1", "replace")[:TEXT_BYTES].ljust(TEXT_BYTES)
    color = 0 if channels == 1 else 2
    return b"".join((
        _SIGNATURE,
        _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)),
        _chunk(b"tEXt", b"Description\x00" + text),
        _chunk(b"IDAT", b"".join(parts)),
        _chunk(b"IEND", b""),
    ))


def grey_levels(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """8-bit grey levels of ``values`` by the percentile rule; also ``lo`` and ``hi``."""
    v = values.astype(np.float64)
    finite = np.isfinite(v)
    if not finite.any():
        return np.zeros(v.shape, np.uint8), 0.0, 0.0
    lo, hi = (float(x) for x in np.percentile(v[finite], [LOW_PERCENTILE, HIGH_PERCENTILE]))
    if hi > lo:
        scaled = np.clip(np.floor((v - lo) * (255.0 / (hi - lo)) + 0.5), 0, 255)
    else:
        scaled = np.where(v > lo, 255.0, 0.0)
    scaled[~finite] = 0
    return scaled.astype(np.uint8), lo, hi


def _box(source: ArraySource, start: tuple[int, ...], extent: tuple[int, ...]) -> np.ndarray:
    out = np.empty(extent, source.dtype)
    source.fill_box(start, extent, out)
    return out


def draw(source: ArraySource, budget: int = PREVIEW_READ_BUDGET) -> tuple[np.ndarray, str]:
    """The preview's values (float64, before grey levels) and a sentence saying what was read.

    Every ``step``-th row is read whole (bands of consecutive rows of at most
    :data:`BAND_BYTES` when every row is kept), reduced at once (a cube's channels
    summed, every ``step``-th column kept), so memory stays at one band."""
    shape, isz = source.shape, source.dtype.itemsize
    cube = is_cube(shape, source.attrs)
    p = plan(shape, isz, cube, budget)
    if p.mode == "coarse":
        return _coarse(source, p, budget)
    lead = (0,) * (len(shape) - (3 if cube else 2))
    h, w = (shape[0], shape[1]) if cube else (shape[-2], shape[-1])
    tail: tuple[int, ...] = (shape[2],) if cube else ()
    row_bytes = w * math.prod(tail) * isz
    band = max(BAND_BYTES // max(row_bytes, 1), 1) if p.step == 1 else 1
    parts = []
    for r in range(0, h, p.step * band):
        n = min(band, h - r)
        block = _box(source, lead + (r, 0) + (0,) * len(tail), (1,) * len(lead) + (n, w) + tail)
        block = block.reshape((n, w) + tail)[:, :: p.step]
        parts.append(block.sum(axis=2, dtype=np.float64) if cube else block.astype(np.float64))
    nbytes = p.height * row_bytes
    what = f"summed counts over all {shape[-1]} channels" if cube else ("first frame" if lead else "the image")
    return np.concatenate(parts), f"{what}; every {p.step}th row and column; read {nbytes} bytes"


def _coarse(source: ArraySource, p: Plan, budget: int) -> tuple[np.ndarray, str]:
    """A large cube: a sparse grid of spectra, a block of channels around the brightest."""
    h, w, depth = source.shape
    isz = source.dtype.itemsize
    probe_step = max(math.ceil(max(h, w) / PROBE_SIDE), 1)
    total = np.zeros(depth, np.float64)
    nprobe = 0
    for r in range(0, h, probe_step):
        for c in range(0, w, probe_step):
            total += _box(source, (r, c, 0), (1, 1, depth)).reshape(depth)
            nprobe += 1
    brightest = int(np.argmax(total))
    left = budget - nprobe * depth * isz
    npix = p.height * p.width
    width = int(min(depth, max(1, left // max(npix * isz, 1))))
    lo = min(max(brightest - width // 2, 0), depth - width)
    values = np.empty((p.height, p.width), np.float64)
    for i, r in enumerate(range(0, h, p.step)):
        for j, c in enumerate(range(0, w, p.step)):
            values[i, j] = _box(source, (r, c, lo), (1, 1, width)).sum(dtype=np.float64)
    nbytes = (nprobe * depth + npix * width) * isz
    return values, (f"summed counts over channels {lo}..{lo + width - 1} around the brightest channel "
                    f"{brightest} (of {nprobe} sampled spectra); every {p.step}th row and column; "
                    f"read {nbytes} bytes")


class CachedPng:
    """Shared part of the picture renderings: a size known up front, bytes drawn on the
    first read and kept in the chunk cache (redrawn if evicted)."""

    def __init__(self, cache: ChunkCache | None, width: int, height: int, channels: int, label: str) -> None:
        self.cache = cache if cache is not None else FALLBACK_CACHE
        self.key = ("png", next(_KEYS))
        self.width, self.height, self.channels, self.label = width, height, channels, label

    @property
    def size(self) -> int:
        return png_size(self.width, self.height, self.channels)

    def make(self) -> bytes:
        raise NotImplementedError

    def read(self, offset: int, size: int) -> bytes:
        data: bytes = self.cache.get(self.key, self.make, f"{self.label} (preview)")
        return data[offset : offset + size]


class PngRendering(CachedPng):
    """An image-like array source as a ``.png`` preview (see the module docstring)."""

    def __init__(self, source: ArraySource, cache: ChunkCache | None = None) -> None:
        self.source = source
        p = plan(source.shape, source.dtype.itemsize, is_cube(source.shape, source.attrs))
        super().__init__(cache if cache is not None else getattr(source, "cache", None),
                         p.width, p.height, 1, source.label)

    def make(self) -> bytes:
        values, what = draw(self.source)
        pixels, lo, hi = grey_levels(values)
        text = (f"vfs preview of shape {self.source.shape} {self.source.dtype}: {what} "
                f"(budget {PREVIEW_READ_BUDGET}); black {lo:.6g} white {hi:.6g} "
                f"({LOW_PERCENTILE}th and {HIGH_PERCENTILE}th percentiles)")
        return encode_png(pixels, text)

