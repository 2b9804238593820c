"""Floats of large arrays as fixed-layout text at full speed: ``% .8e`` for float32,
``% .16e`` for float64, ``% .4e`` for float16 (sign or space, all the digits that always
read back exactly, ``e``, signed exponent), every character at a fixed column.

Why not the shortest form (``render/floattext.py``) here: finding the shortest digits
and placing variable-length text costs two thirds of the speed, and a large array's
``.txt`` is read by programs (awk, gnuplot, numpy.loadtxt), which want speed; people
read the short arrays, which get the shortest form. Here every step is a slice write:
digits from one scaled integer (exact double-double scaling for float64), 3-digit
lookup tables for the digits and the exponent. ``nan``/``inf`` print as ``+nan``,
``+inf``, ``-inf``; float64 values beyond 1e±290 or subnormal use Python's ``%``.
"""

from __future__ import annotations

import numpy as np

from vfs.render.floattext import _DIG3V, _POW10_I, DIGITS, WIDTHS, digit_chars, scale_to_digits

_LIMIT = 1e290


def fixed_cells(values: np.ndarray) -> np.ndarray:
    """Cells ``(n, width)`` of uint8 for a 1-D float16/32/64 array (see the module)."""
    isz = values.dtype.itemsize
    ndig, width = DIGITS[isz], WIDTHS[isz]
    n = len(values)
    v = values.astype(values.dtype.newbyteorder("="), copy=False)
    x = np.abs(v).astype(np.float64)
    finite = np.isfinite(x)
    with np.errstate(invalid="ignore"):
        ok = finite & (x > 0)
        if isz == 8:
            ok &= (x < _LIMIT) & (x > 1 / _LIMIT)
    xs = np.where(ok, x, 1.0)
    e, hi, lo = scale_to_digits(xs, ndig)
    if isz == 8:  # hi is integer-valued near 1e16; lo the rest
        d = hi.astype(np.int64)
        q = np.floor(lo)
        r = lo - q
        d += q.astype(np.int64)
        d += (r > 0.5) | ((r == 0.5) & (d % 2 == 1))  # halfway: to even, as printf does
    else:
        d = np.rint(hi).astype(np.int64)
    carry = d >= _POW10_I[ndig]  # 9.99...5 rounds up to 10.00...
    if carry.any():
        d = np.where(carry, d // 10, d)
        e = e + carry
    d = np.where(ok, d, 0)
    e = np.where(ok, e, 0)
    out = np.empty((n, width), np.uint8)
    out[:, 0] = np.where(np.signbit(v), 45, 32)
    chars = digit_chars(d, ndig)
    out[:, 1] = chars[:, 0]
    out[:, 2] = 46
    out[:, 3 : ndig + 2] = chars[:, 1:]
    pos = ndig + 2
    out[:, pos] = 101
    out[:, pos + 1] = np.where(e < 0, 45, 43)
    ae = np.abs(e)
    exp = _DIG3V[ae].view(np.uint8).reshape(n, 3)
    if width - pos - 2 == 3:  # float64: two exponent digits and a space, three from 1e100
        wide = (ae >= 100)[:, None]
        out[:, pos + 2 :] = np.where(wide, exp, np.concatenate([exp[:, 1:], np.full((n, 1), 32, np.uint8)], 1))
    else:
        out[:, pos + 2 :] = exp[:, 1:]
    odd = ~(ok | (x == 0))
    if odd.any():
        for i in np.flatnonzero(odd):
            value = float(v[i])
            text = ("+nan" if value != value else "%+.0f" % value if not np.isfinite(value)
                    else f"% .{ndig - 1}e" % value)
            out[i] = np.frombuffer(text.encode().ljust(width)[:width], np.uint8)
    return out
