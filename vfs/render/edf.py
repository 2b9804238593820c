"""``.edf`` rendering: EDF images (ESRF Data Format) for 2-D and 3-D numeric arrays.

A 2-D array is one frame; an N-D array is ``prod(shape[:-2])`` frames of
``shape[-2:]``. Every frame has the same header size (a multiple of 512 bytes, padded
with spaces as fabio pads), so the frame behind an offset is a division. The header
carries the standard keys and the dataset's attributes (``key = value ;``); data bytes
are the source's raw bytes in the source's byte order.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vfs.arrays import ArraySource
from vfs.render.values import value_text

DATA_TYPES = {
    "i1": "SignedByte",
    "u1": "UnsignedByte",
    "b1": "UnsignedByte",
    "i2": "SignedShort",
    "u2": "UnsignedShort",
    "i4": "SignedInteger",
    "u4": "UnsignedInteger",
    "i8": "Signed64",
    "u8": "Unsigned64",
    "f4": "FloatValue",
    "f8": "DoubleValue",
}
RESERVED = {
    "headerid", "image", "byteorder", "datatype", "dim_1", "dim_2", "dim_3", "size",
    "compression", "edf_datablockid", "edf_binarysize", "edf_headersize",
}
MAX_VALUE = 1000


def edf_type(dtype: np.dtype[Any]) -> str | None:
    """The EDF DataType name for this dtype, or None where EDF has none."""
    if dtype.names or dtype.subdtype:
        return None
    return DATA_TYPES.get(f"{dtype.kind}{dtype.itemsize}")


def edf_supported(source: ArraySource) -> bool:
    return len(source.shape) >= 2 and edf_type(source.dtype) is not None


def reserved_key(key: str) -> bool:
    """Keys a reader takes as layout: ours, any ``EDF_*`` (fabio would read the data from
    ``EDF_BinaryFileName``, or skip a block holding ``EDF_DataFormatVersion``) and any
    ``Dim_n`` (fabio's rank is the highest n)."""
    low = key.lower()
    return low in RESERVED or low.startswith("edf_") or re.fullmatch(r"dim_\d+", low) is not None


def _clean_key(key: str) -> str:
    key = re.sub(r"[=;{}\r\n]", "_", key).strip() or "_"
    return f"h5_{key}" if reserved_key(key) else key


def _clean_value(value: Any, max_value: int | None = MAX_VALUE) -> str:
    text = re.sub(r"[;{}\r\n]+", " ", value_text(value)).strip()
    return text if max_value is None or len(text) <= max_value else text[: max_value - 3] + "..."


def kept_value(value: Any) -> Any:
    """``value`` itself when small; else the text a header shows of it (cut at
    ``MAX_VALUE`` characters), all a rendering ever needs of it: what a node keeps of a
    large attribute (the header made from either is the same)."""
    size = getattr(value, "nbytes", None)
    if size is None:
        size = len(value) if isinstance(value, (str, bytes)) else 0
    return value if size <= MAX_VALUE else _clean_value(value)


def edf_header(
    shape2: tuple[int, int], dtype: np.dtype[Any], image: int, extra: Mapping[str, Any], block: int = 512,
    max_value: int | None = MAX_VALUE,
) -> bytes:
    """One EDF frame header; ``image`` counts from 1. Padded to a multiple of ``block``.

    Values longer than ``max_value`` characters are cut (None: never, for headers that
    come from an EDF file and so already fit one).
    """
    order = "HighByteFirst" if dtype.byteorder == ">" else "LowByteFirst"
    lines = [
        f"HeaderID = EH:{image:06d}:000000:000000 ;",
        f"Image = {image} ;",
        f"ByteOrder = {order} ;",
        f"DataType = {edf_type(dtype)} ;",
        f"Dim_1 = {shape2[1]} ;",
        f"Dim_2 = {shape2[0]} ;",
        f"Size = {shape2[0] * shape2[1] * dtype.itemsize} ;",
    ]
    lines += [f"{_clean_key(k)} = {_clean_value(v, max_value)} ;" for k, v in extra.items()]
    text = ("{\n" + "\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    return pad_header(text, -(-(len(text) + 2) // block) * block)


def pad_header(text: bytes, size: int) -> bytes:
    """An EDF header of ``size`` bytes: ``text`` (the keys, without the closing ``}``),
    spaces, then ``}\n``, as fabio pads."""
    return text + b" " * (size - len(text) - 2) + b"}\n"


@functools.lru_cache(maxsize=4096)  # a folder of like images asks once per shape and dtype
def _plain_header_size(shape2: tuple[int, int], dtype: np.dtype[Any], image: int) -> int:
    """The size of the last frame's header of an array without header keys."""
    return len(edf_header(shape2, dtype, image, {}))


class EdfRendering:
    """An array source of 2 or more dimensions as a (multi-frame) EDF file."""

    def __init__(
        self, source: ArraySource, extra: Mapping[str, Any] | None = None, max_value: int | None = MAX_VALUE
    ) -> None:
        self.source = source
        self.frame_shape = (source.shape[-2], source.shape[-1])
        self.nframes = math.prod(source.shape[:-2])
        self.extra = dict(source.attrs if extra is None else extra)
        self.max_value = max_value
        if self.extra:
            last = edf_header(self.frame_shape, source.dtype, max(self.nframes, 1), self.extra, max_value=max_value)
            self.header_size = len(last)
        else:
            self.header_size = _plain_header_size(self.frame_shape, source.dtype, max(self.nframes, 1))
        self.frame_bytes = self.frame_shape[0] * self.frame_shape[1] * source.dtype.itemsize

    def own_header(self, k: int) -> bytes:
        """Header of frame ``k`` (from 0) padded to 512 bytes only."""
        return edf_header(self.frame_shape, self.source.dtype, k + 1, self.extra, max_value=self.max_value)

    def header(self, k: int) -> bytes:
        """Header of frame ``k`` (from 0), padded to the common header size."""
        head = self.own_header(k)
        return head if len(head) >= self.header_size else pad_header(head[:-2], self.header_size)

    @property
    def size(self) -> int:
        return self.nframes * (self.header_size + self.frame_bytes)

    def read(self, offset: int, size: int) -> bytes:
        end = min(offset + size, self.size)
        step = self.header_size + self.frame_bytes
        parts = []
        pos = offset
        while pos < end:
            k, inner = divmod(pos, step)
            stop = min(end - k * step, step)
            if inner < self.header_size:
                parts.append(self.header(k)[inner : min(stop, self.header_size)])
                inner = self.header_size
            if stop > inner:
                base = k * self.frame_bytes - self.header_size
                parts.append(self.source.read_bytes(base + inner, base + stop))
            pos = k * step + stop
        return b"".join(parts)


class FramewiseEdfRendering(EdfRendering):
    """An ``.edf`` rendering whose frames each carry their own header keys (``extras(k)``,
    an EDF stack's own keys), so its headers are as long as the longest of them.

    ``extras(k)`` is the same for the ``per`` frames of one group (the images of one
    source frame with ``Dim_3``), so the longest header is found among the last frame of
    each group (the longest ``Image`` number): time linear in source frames, not images.
    """

    def __init__(self, source: ArraySource, extras: Callable[[int], Mapping[str, Any]], per: int = 1) -> None:
        self.extras = extras
        super().__init__(source, extra={}, max_value=None)
        n, per = self.nframes, max(per, 1)
        last = (min(g + per, n) - 1 for g in range(0, n, per))
        self.header_size = max((len(self.own_header(k)) for k in last), default=self.header_size)

    def own_header(self, k: int) -> bytes:
        return edf_header(self.frame_shape, self.source.dtype, k + 1, self.extras(k), max_value=None)
