"""``.npy`` rendering: byte for byte what ``numpy.save`` writes, so mmap loads work.

The header is computed from shape and dtype alone (format 1.0, or 2.0/3.0 when the
header needs it, the same choice numpy makes); the body is the source's raw C-order
bytes, served a range at a time.
"""

from __future__ import annotations

import functools
import io
import warnings
from typing import Any

import numpy as np

from vfs.arrays import ArraySource



class _HeaderWritten(Exception):
    """Stops ``numpy.lib.format.write_array`` after the header."""


class _HeaderOnly(io.BytesIO):
    """A file that keeps the first write (the header) and refuses the data after it."""

    def write(self, data: Any) -> int:
        if self.tell():
            raise _HeaderWritten
        return super().write(data)


@functools.lru_cache(maxsize=4096)  # a folder of 1,000 images asks 1,000 times for one header
def npy_header(shape: tuple[int, ...], dtype: np.dtype[Any]) -> bytes:
    """The header ``numpy.save`` writes for a C-ordered array of this shape and dtype.

    Written by numpy's public ``numpy.lib.format`` functions, so it is the installed
    numpy's own: format 1.0, else 2.0 when the header is too long for 1.0. Field names
    that latin-1 cannot hold need format 3.0, which numpy writes publicly only with the
    data: ``write_array`` of a zero-stride view of that shape, stopped after the header
    (about 0.5 ms, and only for such dtypes).
    """
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    for write in (np.lib.format.write_array_header_1_0, np.lib.format.write_array_header_2_0):
        fp = io.BytesIO()
        try:
            write(fp, header)
        except ValueError:  # too long for 1.0, or not latin-1 (UnicodeEncodeError)
            continue
        return fp.getvalue()
    fp = _HeaderOnly()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Stored array in format 3.0"
        try:
            np.lib.format.write_array(fp, np.broadcast_to(np.zeros((), dtype), shape), allow_pickle=False)
        except _HeaderWritten:
            pass
    return fp.getvalue()


@functools.lru_cache(maxsize=1024)
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

    def read_into(self, offset: int, dest: np.ndarray) -> int | None:
        """Bytes from ``offset`` written straight into ``dest`` (a uint8 array: the FUSE
        reply buffer), their count; None where that would spare no copy (header bytes,
        a range that splits elements, a buffer not aligned for the dtype)."""
        hlen, dtype = len(self.header), self.source.dtype
        end = min(offset + dest.size, self.size)
        if offset < hlen or offset >= end or dtype.itemsize == 0:
            return None
        p, q = offset - hlen, end - hlen
        if p % dtype.itemsize or q % dtype.itemsize or dest.ctypes.data % dtype.alignment:
            return None
        self.source.read_flat(p // dtype.itemsize, q // dtype.itemsize, dest[: q - p].view(dtype))
        return q - p

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
