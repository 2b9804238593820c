"""The digits of ``.txt``: the short layout against Python's ``repr`` and numpy's ``str``
(independent implementations of the shortest round-trip form), the fixed layout against
printf's ``% .8e`` / ``% .16e``; and every value read back exactly by numpy.loadtxt."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vfs.arrays import MemorySource
from vfs.limits import SHORT_TEXT_ELEMENTS
from vfs.render.floatfixed import fixed_cells
from vfs.render.floattext import float_cells
from vfs.render.txt import TxtRendering

SPECIAL = {"nan": "+nan", "inf": "+inf", "-inf": "-inf"}


def shortest(v: np.floating) -> str:
    text = repr(float(v)) if v.dtype.itemsize == 8 else str(v)
    return SPECIAL.get(text, text)


def floats(dtype: type, limit: float) -> st.SearchStrategy[list[float]]:
    # below the magnitude where an exact tie with an inexact power of ten can cost one
    # more digit than repr (documented in docs/layout.md)
    width = {np.float16: 16, np.float32: 32, np.float64: 64}[dtype]
    one = st.floats(width=width, allow_nan=True, allow_infinity=True).filter(lambda f: abs(f) < limit or f != f)
    return st.lists(one, min_size=1, max_size=200)


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_short_digits_are_repr_and_numpy_str(data: st.DataObject) -> None:
    dtype, limit = data.draw(st.sampled_from([(np.float64, 1e16), (np.float32, 1e8), (np.float16, 1e4)]))
    values = np.array(data.draw(floats(dtype, limit)), dtype=dtype)
    cells = float_cells(values)
    assert [c.tobytes().decode().rstrip() for c in cells] == [shortest(v) for v in values]


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_fixed_layout_is_printf(data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from([np.float64, np.float32, np.float16]))
    values = np.array(data.draw(floats(dtype, np.inf)), dtype=dtype)
    fmt = {8: "% .16e", 4: "% .8e", 2: "% .4e"}[values.dtype.itemsize]
    for v, cell in zip(values, fixed_cells(values)):
        text = cell.tobytes().decode().rstrip()
        f = float(v)
        if f != f or f in (np.inf, -np.inf):
            assert text == SPECIAL[repr(f)]
            continue
        want = fmt % f
        mantissa, _, exponent = want.partition("e")
        if values.dtype.itemsize == 8 and abs(int(exponent)) < 100:
            assert text == want  # two exponent digits and a pad space
        else:
            assert text == f"{mantissa}e{exponent[0]}{abs(int(exponent)):0{len(text) - len(mantissa) - 2}d}"


def test_short_and_fixed_layouts_read_back_exactly() -> None:
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        for n in (1000, SHORT_TEXT_ELEMENTS + 1):
            values = (rng.standard_normal(n) * 10.0 ** rng.integers(-20, 20, n)).astype(dtype)
            r = TxtRendering(MemorySource(values, "x"))
            assert r.short == (n <= SHORT_TEXT_ELEMENTS)
            text = r.read(0, r.size)
            assert len(text) == r.size
            np.testing.assert_array_equal(np.loadtxt(io.BytesIO(text)).astype(dtype), values)


def test_short_digits_at_the_ends_of_each_type() -> None:
    for dtype in (np.float16, np.float32, np.float64):
        info = np.finfo(dtype)
        smallest = np.nextafter(dtype(0), dtype(1))
        values = np.array([info.max, -info.max, info.tiny, smallest, -smallest, info.eps, 1, 0.1], dtype=dtype)
        assert [c.tobytes().decode().rstrip() for c in float_cells(values)] == [shortest(v) for v in values]


def test_integer_cells_are_printf() -> None:
    from vfs.render.txt import cell_format

    rng = np.random.default_rng(9)
    for dtype in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64):
        info = np.iinfo(dtype)
        values = np.concatenate([rng.integers(info.min, info.max, 2000, dtype=dtype, endpoint=True),
                                 np.array([info.min, info.max, 0, 1, 9, 10], dtype=dtype)])
        width, cells = cell_format(np.dtype(dtype).newbyteorder(">"))
        got = [c.tobytes().decode() for c in cells(values.astype(np.dtype(dtype).newbyteorder(">")))]
        assert got == [f"%{width}d" % int(v) for v in values]
