"""``.txt`` rendering: fixed-width text, one value (1-D) or one row (N-D) per line.

Every element takes exactly ``width + 1`` bytes: its cell, right-aligned, then a space
or, at the end of a row, a newline. So the file size is ``n * (width + 1)`` and the
element behind any offset is a division: a read formats only the elements it covers.

Cell formats lose nothing: float16 ``%+.4e``, float32 ``%+.8e``, float64 ``%+.16e``
(round-trip exact), long double with 21 digits, integers in full. Complex values print
as two cells (real, imaginary), compound values as their fields in order, fixed-length
strings as their bytes (NUL, CR and LF shown as spaces), so awk sees plain columns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from vfs.arrays import ArraySource

CellFn = Callable[[np.ndarray], np.ndarray]

_FLOAT_FORMATS = {2: ("%+11.4e", 11), 4: ("%+15.8e", 15), 8: ("%+24.16e", 24)}


def _percent_cells(fmt: str, width: int, convert: Callable[[np.ndarray], list[Any]]) -> CellFn:
    def cells(values: np.ndarray) -> np.ndarray:
        n = len(values)
        if n == 0:
            return np.empty((0, width), np.uint8)
        text = ((fmt * n) % tuple(convert(values))).encode("ascii")
        return np.frombuffer(text, np.uint8).reshape(n, width)

    return cells


def _longdouble_cells(width: int) -> CellFn:
    def cells(values: np.ndarray) -> np.ndarray:
        text = "".join(
            np.format_float_scientific(v, precision=20, unique=False, sign=True).rjust(width) for v in values
        )
        return np.frombuffer(text.encode("ascii"), np.uint8).reshape(len(values), width)

    return cells


def _bytes_cells(width: int) -> CellFn:
    def cells(values: np.ndarray) -> np.ndarray:
        raw = np.frombuffer(np.ascontiguousarray(values).tobytes(), np.uint8).reshape(len(values), width).copy()
        raw[(raw == 0) | (raw == 10) | (raw == 13)] = 32
        return raw

    return cells


def _unicode_cells(width: int) -> CellFn:
    def cells(values: np.ndarray) -> np.ndarray:
        out = np.full((len(values), width), 32, np.uint8)
        for i, v in enumerate(values):
            b = str(v).replace("\n", " ").replace("\r", " ").encode("utf-8")[:width]
            out[i, : len(b)] = np.frombuffer(b, np.uint8)
        return out

    return cells


Pick = Callable[[np.ndarray], np.ndarray]


def _pick_element(k: int) -> Pick:
    return lambda v: v.reshape(len(v), -1)[:, k]


def _pick_field(name: str) -> Pick:
    return lambda v: v[name]


def _join(parts: list[tuple[int, CellFn, Pick]]) -> tuple[int, CellFn]:
    """Cells side by side, one space apart; each part picks its values from the input."""
    width = sum(w for w, _, _ in parts) + len(parts) - 1

    def cells(values: np.ndarray) -> np.ndarray:
        out = np.full((len(values), width), 32, np.uint8)
        col = 0
        for w, fn, pick in parts:
            out[:, col : col + w] = fn(pick(values))
            col += w + 1
        return out

    return width, cells


def cell_format(dtype: np.dtype[Any]) -> tuple[int, CellFn]:
    """Width and cell function for one element of ``dtype``; ValueError if not text-able."""
    kind, isz = dtype.kind, dtype.itemsize
    if dtype.subdtype is not None:
        base, sub = dtype.subdtype
        w, fn = cell_format(base)
        count = int(np.prod(sub))
        return _join([(w, fn, _pick_element(k)) for k in range(count)])
    if dtype.names:
        parts: list[tuple[int, CellFn, Pick]] = []
        for name in dtype.names:
            w, fn = cell_format(dtype.fields[name][0])  # type: ignore[index]
            parts.append((w, fn, _pick_field(name)))
        return _join(parts)
    if kind == "b":
        return 1, _percent_cells("%1d", 1, lambda v: v.astype(np.uint8).tolist())
    if kind in "iu":
        info = np.iinfo(dtype)
        width = max(len(str(info.min)), len(str(info.max)))
        return width, _percent_cells(f"%{width}d", width, lambda v: v.tolist())
    if kind == "f":
        if isz in _FLOAT_FORMATS:
            fmt, width = _FLOAT_FORMATS[isz]
            return width, _percent_cells(fmt, width, lambda v: v.astype(np.float64).tolist())
        return 29, _longdouble_cells(29)
    if kind == "c":
        w, fn = cell_format(np.dtype(f"f{isz // 2}"))
        real: Pick = lambda v: v.real  # noqa: E731
        imag: Pick = lambda v: v.imag  # noqa: E731
        return _join([(w, fn, real), (w, fn, imag)])
    if kind in "SV":
        return isz, _bytes_cells(isz)
    if kind == "U":
        return isz, _unicode_cells(isz)
    raise ValueError(f"no fixed-width text for dtype {dtype}")


def txt_supported(dtype: np.dtype[Any]) -> bool:
    try:
        cell_format(dtype)
    except (ValueError, TypeError):
        return False
    return True


def format_elements(values: np.ndarray, first: int, row: int, width: int, cells: CellFn) -> bytes:
    """Text of consecutive elements starting at flat index ``first`` (rows of ``row``)."""
    n = len(values)
    out = np.empty((n, width + 1), np.uint8)
    out[:, :width] = cells(values)
    out[:, width] = 32
    ends = np.arange((row - 1 - first) % row, n, row)
    out[ends, width] = 10
    return out.tobytes()


class TxtRendering:
    """An array source as fixed-width text."""

    def __init__(self, source: ArraySource) -> None:
        self.source = source
        self.width, self.cells = cell_format(source.dtype)
        self.row = source.shape[-1] if len(source.shape) >= 2 and source.shape[-1] > 0 else 1

    @property
    def size(self) -> int:
        return self.source.size * (self.width + 1)

    def read(self, offset: int, size: int) -> bytes:
        step = self.width + 1
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        e0, e1 = offset // step, -(-end // step)
        text = format_elements(self.source.read_flat(e0, e1), e0, self.row, self.width, self.cells)
        return text[offset - e0 * step : end - e0 * step]
