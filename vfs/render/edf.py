"""``.edf`` rendering: EDF images (ESRF Data Format) for 2-D and 3-D numeric arrays.

A 2-D array is one frame; an N-D array is ``prod(shape[:-2])`` frames of
``shape[-2:]``. Every frame has the same header size (a multiple of 512 bytes, padded
with spaces as fabio pads), so the frame behind an offset is a division. The header
carries the standard keys and the dataset's attributes (``key = value ;``); data bytes
are the source's raw bytes in the source's byte order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
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


def _clean_key(key: str) -> str:
    key = re.sub(r"[=;{}\r\n]", "_", key).strip() or "_"
    return f"h5_{key}" if key.lower() in RESERVED else key


def _clean_value(value: Any) -> str:
    text = re.sub(r"[;{}\r\n]+", " ", value_text(value)).strip()
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def edf_header(
    shape2: tuple[int, int], dtype: np.dtype[Any], image: int, extra: Mapping[str, Any], block: int = 512
) -> bytes:
    """One EDF frame header; ``image`` counts from 1. Padded to a multiple of ``block``."""
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
    lines += [f"{_clean_key(k)} = {_clean_value(v)} ;" for k, v in extra.items()]
    text = ("{\n" + "\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    total = -(-(len(text) + 2) // block) * block
    return text + b" " * (total - len(text) - 2) + b"}\n"


class EdfRendering:
    """An array source of 2 or more dimensions as a (multi-frame) EDF file."""

    def __init__(self, source: ArraySource, extra: Mapping[str, Any] | None = None) -> None:
        self.source = source
        self.frame_shape = (source.shape[-2], source.shape[-1])
        self.nframes = math.prod(source.shape[:-2])
        self.extra = dict(source.attrs if extra is None else extra)
        last = edf_header(self.frame_shape, source.dtype, max(self.nframes, 1), self.extra)
        self.header_size = len(last)
        self.frame_bytes = self.frame_shape[0] * self.frame_shape[1] * source.dtype.itemsize

    def header(self, k: int) -> bytes:
        """Header of frame ``k`` (from 0), padded to the common header size."""
        head = edf_header(self.frame_shape, self.source.dtype, k + 1, self.extra)
        if len(head) < self.header_size:
            head = head[:-2] + b" " * (self.header_size - len(head)) + b"}\n"
        return head

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
