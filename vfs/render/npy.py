"""``.npy`` rendering: byte for byte what ``numpy.save`` writes, so mmap loads work.

The header is computed from shape and dtype alone (format 1.0, or 2.0/3.0 when the
header needs it, the same choice numpy makes); the body is the source's raw C-order
bytes, served a range at a time.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from vfs.arrays import ArraySource

MAGIC = b"\x93NUMPY"
ARRAY_ALIGN = 64
GROWTH_AXIS_MAX_DIGITS = 21


def npy_header(shape: tuple[int, ...], dtype: np.dtype[Any]) -> bytes:
    """The header ``numpy.save`` writes for a C-ordered array of this shape and dtype."""
    descr = np.lib.format.dtype_to_descr(dtype)
    text = "{" + f"'descr': {descr!r}, 'fortran_order': False, 'shape': {tuple(shape)!r}, " + "}"
    if shape:  # numpy leaves room to grow the first axis in place
        text += " " * (GROWTH_AXIS_MAX_DIGITS - len(repr(shape[0])))
    for version, fmt, encoding in (((1, 0), "<H", "latin1"), ((2, 0), "<I", "latin1"), ((3, 0), "<I", "utf8")):
        try:
            body = text.encode(encoding)
        except UnicodeEncodeError:
            continue
        hlen = len(body) + 1
        prefix_len = len(MAGIC) + 2 + struct.calcsize(fmt)
        pad = ARRAY_ALIGN - ((prefix_len + hlen) % ARRAY_ALIGN)
        if fmt == "<H" and hlen + pad >= 65536:
            continue
        return MAGIC + bytes(version) + struct.pack(fmt, hlen + pad) + body + b" " * pad + b"\n"
    raise ValueError(f"cannot write an npy header for {dtype}")


def npy_supported(dtype: np.dtype[Any]) -> bool:
    """Whether NumPy can hold this dtype in an .npy without pickle."""
    if dtype.hasobject:
        return False
    try:
        npy_header((1,), dtype)
    except (ValueError, TypeError):
        return False
    return True


class NpyRendering:
    """An array source as an ``.npy`` file."""

    def __init__(self, source: ArraySource) -> None:
        self.source = source
        self.header = npy_header(source.shape, source.dtype)

    @property
    def size(self) -> int:
        return len(self.header) + self.source.nbytes

    def read(self, offset: int, size: int) -> bytes:
        return bytes(self.read_buffer(offset, size))

    def read_buffer(self, offset: int, size: int) -> bytes | np.ndarray:
        """As :meth:`read`, but body-only ranges come back as a uint8 array (no copy)."""
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        hlen = len(self.header)
        if offset >= hlen:
            return self.source.read_view(offset - hlen, end - hlen)
        head = self.header[offset:end]
        if end <= hlen:
            return head
        return head + self.source.read_bytes(0, end - hlen)
