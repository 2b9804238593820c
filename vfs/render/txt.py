"""``.txt`` rendering: one value (1-D) or one row (N-D) per line, every value exact.

Two layouts; every number reads back to the same value:

* **Short** (numbers, at most ``limits.SHORT_TEXT_ELEMENTS`` elements, image-like
  arrays of 2-D and more at most ``limits.SHORT_TEXT_IMAGE_ELEMENTS``, and every SPEC
  column): values separated by one space, in the shortest form that reads back
  (``render/floattext.py``, as Python's ``repr`` and numpy's ``str`` write them:
  ``0.99``, ``1.595026e-13``, ``2.5``). The size
  is known once the text is made, so it is made on first ``stat`` and kept in a small
  byte-budgeted cache (``limits.SHORT_TEXT_CACHE``); only its size is kept after that.
* **Padded shortest** (image-like arrays of 2-D and more above
  ``SHORT_TEXT_IMAGE_ELEMENTS`` and up to ``SHORT_TEXT_ELEMENTS``): the same shortest
  digits, each left in a fixed cell padded with spaces, so the size is arithmetic as in
  the fixed layout below and ``cat`` still shows ``0.99``.
* **Fixed width** (larger arrays, compound values, strings): every element takes exactly
  ``width + 1`` bytes, its cell then a space or, at the end of a row, a newline. So the
  size is ``n * (width + 1)`` and the element behind any offset is a division: a read
  formats only the elements it covers. Floats use the fast fixed layout of
  ``render/floatfixed.py`` (``% .8e`` for float32: 15 characters, float64 24, float16
  11), integers are right-aligned in full width.

Long double keeps 21 digits. Complex values print as two numbers (real, imaginary),
compound values as their fields in order, fixed-length strings as their bytes (NUL, CR
and LF shown as spaces), so awk sees plain columns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import cachetools
import numpy as np

from vfs.arrays import ArraySource
from vfs.limits import SHORT_TEXT_CACHE, SHORT_TEXT_ELEMENTS, SHORT_TEXT_IMAGE_ELEMENTS
from vfs.render.floatfixed import fixed_cells
from vfs.render.floattext import WIDTHS, float_cells, int_cells

CellFn = Callable[[np.ndarray], np.ndarray]


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


def cell_format(dtype: np.dtype[Any], short: bool = False) -> tuple[int, CellFn]:
    """Width and cell function for one element of ``dtype``; ValueError if not text-able.
    Floats: the shortest exact digits when ``short``, else the fast fixed layout."""
    kind, isz = dtype.kind, dtype.itemsize
    if dtype.subdtype is not None:
        base, sub = dtype.subdtype
        w, fn = cell_format(base, short)
        count = int(np.prod(sub))
        return _join([(w, fn, _pick_element(k)) for k in range(count)])
    if dtype.names:
        parts: list[tuple[int, CellFn, Pick]] = []
        for name in dtype.names:
            w, fn = cell_format(dtype.fields[name][0], short)  # type: ignore[index]
            parts.append((w, fn, _pick_field(name)))
        return _join(parts)
    if kind == "b":
        return 1, _percent_cells("%1d", 1, lambda v: v.astype(np.uint8).tolist())
    if kind in "iu":
        info = np.iinfo(dtype)
        width = max(len(str(info.min)), len(str(info.max)))
        return width, int_cells(width)
    if kind == "f":
        if isz in WIDTHS:
            return WIDTHS[isz], float_cells if short else fixed_cells
        return 29, _longdouble_cells(29)
    if kind == "c":
        w, fn = cell_format(np.dtype(f"f{isz // 2}"), short)
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


def short_text(values: np.ndarray, row: int) -> bytes:
    """Numbers (a flat array of kind b, i, u, f or c) as text without padding: values
    one space apart, a newline after every ``row`` of them."""
    if values.dtype.kind == "c":  # real and imaginary side by side
        values = np.stack([values.real, values.imag], axis=-1).reshape(-1)
        row *= 2
    width, cells = cell_format(values.dtype, short=True)
    full = np.frombuffer(format_elements(values, 0, row, width, cells), np.uint8).reshape(len(values), width + 1)
    keep = full != 32  # numbers never hold a space: every space in a cell is padding
    keep[:, width] = True
    return full[keep].tobytes()


def shortest_digits(source: ArraySource) -> bool:
    """Whether ``source``'s values are written in their shortest exact form: numbers of
    at most ``SHORT_TEXT_ELEMENTS`` elements, and every SPEC column."""
    dtype = source.dtype
    if dtype.names or dtype.kind not in "biufc":
        return False
    if dtype.kind in "fc" and dtype.itemsize // (2 if dtype.kind == "c" else 1) not in WIDTHS:
        return False  # long double keeps its fixed 21 digits
    return source.short_text or source.size <= SHORT_TEXT_ELEMENTS


def short_form(source: ArraySource) -> bool:
    """Whether ``source`` gets the short text layout (see the module docstring). An
    image-like array above ``SHORT_TEXT_IMAGE_ELEMENTS`` keeps its shortest digits but in
    fixed cells padded with spaces: a folder of 1,000 images lists without reading them."""
    if not shortest_digits(source):
        return False
    return source.short_text or len(source.shape) < 2 or source.size <= SHORT_TEXT_IMAGE_ELEMENTS


_SHORT_CACHE: cachetools.LRUCache[object, bytes] = cachetools.LRUCache(
    SHORT_TEXT_CACHE, getsizeof=lambda text: len(text) + 256)
_SHORT_LOCK = threading.Lock()


class TxtRendering:
    """An array source as text (short or fixed-width, see the module docstring)."""

    def __init__(self, source: ArraySource) -> None:
        self.source = source
        self.short = short_form(source)
        self.width, self.cells = cell_format(source.dtype, shortest_digits(source))
        self.row = source.shape[-1] if len(source.shape) >= 2 and source.shape[-1] > 0 else 1
        self._short_size: tuple[int, int] | None = None  # (elements, bytes) of the made text

    def _text(self) -> bytes:
        """The short text, made once and kept while the cache has room for it (keyed by
        this rendering and the source's current size: a growing SPEC scan is remade)."""
        key = (self, self.source.size)
        with _SHORT_LOCK:
            text = _SHORT_CACHE.get(key)
        if text is None:
            text = short_text(self.source.read_flat(0, self.source.size), self.row)
            self._short_size = (self.source.size, len(text))
            with _SHORT_LOCK:
                if len(text) < SHORT_TEXT_CACHE:
                    _SHORT_CACHE[key] = text
        return text

    @property
    def size_ready(self) -> bool:
        """Whether :attr:`size` is arithmetic now (the short text is made to know it)."""
        return not self.short or (self._short_size is not None and self._short_size[0] == self.source.size)

    @property
    def size(self) -> int:
        if not self.short:
            return self.source.size * (self.width + 1)
        if self._short_size is None or self._short_size[0] != self.source.size:
            try:
                return len(self._text())
            except OSError:
                # data that cannot be read (logged where raised) must not make `ls -l`
                # fail: this file keeps the fixed layout, whose reads give EIO
                self.short = False
                self.width, self.cells = cell_format(self.source.dtype, False)
                return self.size
        return self._short_size[1]

    def read(self, offset: int, size: int) -> bytes:
        if self.short:
            return self._text()[offset : offset + size]
        step = self.width + 1
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        e0, e1 = offset // step, -(-end // step)
        text = format_elements(self.source.read_flat(e0, e1), e0, self.row, self.width, self.cells)
        return text[offset - e0 * step : end - e0 * step]
