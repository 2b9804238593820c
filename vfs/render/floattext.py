"""Floats as short, exact text, vectorised: the shortest digits that read back to the
same value, laid out as Python's ``repr`` does, in fixed-width cells.

Why not ``'%r' % v`` per value: a Python call per element runs at a fraction of the
speed a large ``.txt`` must stream at. Here every step is a numpy operation over the
whole block:

1. Scale ``|v|`` to ``D = |v| * 10**s``, ``s = p - 1 - floor(log10|v|)``, so that ``D``
   holds ``p`` digits (``p`` = 17 for float64, 9 for float32, 5 for float16).
   float32/16 scale in float64 (error ~1e-16, far below their ulp); float64 scales in
   double-double arithmetic (Dekker's exact product with a two-part power of ten).
2. The shortest digit count ``k`` is found by bisection: ``k`` digits are accepted when
   the ``k``-digit decimal lies within 0.49 of the value's smaller ulp (scaled), so any
   correctly rounding reader (``strtod``, awk, gnuplot, ``numpy.loadtxt``) reads the value
   back exactly, also when a float32 is read as float64 and then cast.
3. The cell is gathered from a per-element table of characters with one pattern per
   (digits, exponent, sign): positional for ``-4 <= exponent < 16`` (float32: 6, float16: 3) as ``repr``
   and numpy's ``str`` do (``0.99``, ``2.5``, ``100.0``), scientific otherwise (``1.595026e-13``, ``1e+16``);
   a positional form longer than the cell is written in scientific form.
   ``nan``/``inf`` print as ``+nan``/``+inf``/``-inf``, which awk and gnuplot read.

Values outside the double-double range (|exponent| > 290) fall back to ``repr``.
"""

from __future__ import annotations

from fractions import Fraction
from collections.abc import Callable
from typing import Any

import numpy as np

#: significant digits that always round-trip, and the cell width, per float size
DIGITS = {2: 5, 4: 9, 8: 17}
WIDTHS = {2: 11, 4: 15, 8: 24}
#: positional form for decimal exponents -4 <= e < this (numpy's and Python's rule)
POSITIONAL_BELOW = {2: 3, 4: 6, 8: 16}
_EXP_LIMIT = 290

# power-of-ten table 10**s for s in [-_SMAX, _SMAX]: high part, low part, and the high
# part split in two halves of 26 bits (Dekker), all from exact rational arithmetic
_SMAX = 330


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dekker's split by masking: hi keeps the top 26 mantissa bits, lo = a - hi exactly."""
    hi = (a.view(np.uint64) & np.uint64(0xFFFF_FFFF_F800_0000)).view(np.float64)
    return hi, a - hi


def _pow_table() -> tuple[np.ndarray, ...]:
    hi = np.empty(2 * _SMAX + 1)
    lo = np.empty(2 * _SMAX + 1)
    for i, s in enumerate(range(-_SMAX, _SMAX + 1)):
        exact = Fraction(10) ** s
        h = float(exact) if s <= 308 else np.inf
        hi[i] = h
        lo[i] = float(exact - Fraction(h)) if np.isfinite(h) else 0.0
    with np.errstate(invalid="ignore"):
        hh, hl = _split(hi)
    return hi, lo, hh, hl


_P_HI, _P_LO, _P_HH, _P_HL = _pow_table()
_POW10_F = np.array([10.0**i for i in range(18)])
_POW10_I = np.array([10**i for i in range(18)], np.int64)
_DIG3 = np.frombuffer("".join(f"{i:03d}" for i in range(1000)).encode(), np.uint8).reshape(1000, 3)
_DIG3V = _DIG3.copy().view("V3").reshape(1000)  # one 3-byte item per number below 1000
#: largest s with x * 10**s exact in a double for every x of 5 (float16) / 9 (float32) digits
_EXACT_POWER = {5: 18, 9: 12}


def _scaled(x: np.ndarray, s: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
    """``x * 10**s`` as an unevaluated sum hi + lo (Dekker's exact product; lo is 0 when
    the power of ten is exact and the product fits a double). Not ``exact``: lo = 0."""
    i = s + _SMAX
    ph = _P_HI[i]
    hi = x * ph
    if not exact:
        return hi, hi
    xh, xl = _split(x)
    bh, bl = _P_HH[i], _P_HL[i]
    err = ((xh * bh - hi) + xh * bl + xl * bh) + xl * bl
    return hi, err + x * _P_LO[i]


def scale_to_digits(x: np.ndarray, ndig: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decimal exponent ``e`` of positive ``x`` and ``x * 10**(ndig-1-e)`` (in
    ``[10**(ndig-1), 10**ndig)``) as hi + lo (double-double for float64's 17 digits)."""
    exact = ndig > 9
    e = np.floor(np.log10(x)).astype(np.int64)
    for _ in range(3):  # log10 can be one off near powers of ten
        hi, lo = _scaled(x, ndig - 1 - e, exact)
        top, bottom = _POW10_F[ndig], _POW10_F[ndig - 1]
        if exact:  # compare hi + lo, not the rounded hi alone
            above = (hi > top) | ((hi == top) & (lo >= 0))
            below = (hi < bottom) | ((hi == bottom) & (lo < 0))
        else:
            above, below = hi >= top, hi < bottom
        shift = above.astype(np.int64) - below
        if not shift.any():
            break
        e = e + shift
    return e, hi, lo


def digit_chars(d: np.ndarray, ndig: int) -> np.ndarray:
    """``(n, ndig)`` ASCII digits of non-negative integers below ``10**ndig`` (zero-padded;
    up to 27 digits, so every int64 and uint64)."""
    groups = -(-ndig // 3)
    parts: list[np.ndarray] = []
    rest = d
    for _ in range(-(-groups // 3) - 1):  # 9 digits at a time from the right
        rest, low = np.divmod(rest, 10**9)
        parts.insert(0, low.astype(np.uint32))
    parts.insert(0, rest.astype(np.uint32))
    cols = []
    for part in parts:
        cols += [part // 1000000, part // 1000 % 1000, part % 1000]
    chars = _DIG3V[np.stack(cols[len(cols) - groups:], axis=1)].view(np.uint8).reshape(len(d), 3 * groups)
    return chars[:, 3 * groups - ndig:]


def int_cells(width: int) -> Callable[[np.ndarray], np.ndarray]:
    """Cells of integers right-aligned in ``width`` characters (sign included), as
    ``'%{width}d'`` writes them, from digit tables rather than a Python call per value."""

    def cells(values: np.ndarray) -> np.ndarray:
        v = values.astype(values.dtype.newbyteorder("="), copy=False)
        if v.dtype.kind == "i":
            magnitude = np.abs(v.astype(np.int64)).view(np.uint64)  # |int64 min| still fits uint64
            magnitude = np.where(v < 0, (~v.astype(np.int64)).view(np.uint64) + np.uint64(1), magnitude)
        else:
            magnitude = v.astype(np.uint64)
        out = digit_chars(magnitude, width)
        lead = np.logical_and.accumulate(out == 48, axis=1)
        lead[:, -1] = False  # zero is "0"
        out[lead] = 32
        if v.dtype.kind == "i":
            neg = np.flatnonzero(v < 0)
            if len(neg):
                out[neg, lead[neg].sum(axis=1) - 1] = 45
        return out

    return cells


def shortest_digits(x: np.ndarray, gaps: tuple[np.ndarray, np.ndarray], even: np.ndarray,
                    ndig: int) -> tuple[np.ndarray, ...]:
    """For positive finite normal ``x`` (float64 values) with ``gaps`` the distances to the
    next smaller and next larger value in their own type and ``even`` whether the
    mantissa is even: integer digits ``d`` (``k`` of them) and the decimal exponent ``e``
    of the leading digit, with ``d * 10**(e-k+1)`` the closest ``k``-digit decimal that
    reads back, ``k`` as small as possible."""
    exact = ndig > 9  # float64 needs double-double; float16/32 fit a double's precision
    e, hi, lo = scale_to_digits(x, ndig)
    s = ndig - 1 - e
    scale = _P_HI[s + _SMAX] * 0.5
    # How close a candidate must be: within half the gap on its side. Exactly half is
    # fine for an even mantissa (readers round ties to even) when the scaling was exact.
    if exact:
        exact_scale = lo == 0
    else:
        exact_scale = (s >= 0) & (s <= _EXACT_POWER[ndig])
    # an inexact scaling errs by ~1e-30 (double-double) or ~1e-16 (float16/32) of the
    # value, far inside these margins
    factor = np.where(exact_scale, np.where(even, 1.0, 1 - 1e-12), 1 - 1e-9 if exact else 1 - 1e-6) * scale
    tol_below, tol_above = gaps[0] * factor, gaps[1] * factor
    if exact:
        floor = np.floor(hi)
        whole = floor.astype(np.int64)
        frac = (hi - floor) + lo

        def nearest(kk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            step = _POW10_I[ndig - kk]
            c = whole // step
            r = ((whole - c * step).astype(np.float64) + frac) / step
            q = np.floor(r)
            r -= q
            c = c + q.astype(np.int64)
            c += (r > 0.5) | ((r == 0.5) & (c % 2 == 1))  # halfway: to even, as printf does
            return c, (c * step - whole).astype(np.float64) - frac
    else:

        def nearest(kk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            step = _POW10_F[ndig - kk]
            c = hi / step
            np.rint(c, out=c)  # halfway cases to even, as printf does
            diff = c * step
            diff -= hi
            return c, diff

    # bisection on k: the smallest digit count within tolerance (monotone in k; ndig
    # digits always are)
    lo_k = np.ones(len(x), np.int64)
    hi_k = np.full(len(x), ndig, np.int64)
    best = nearest(hi_k)[0]
    neg_below = -tol_below
    uneven = tol_below != tol_above
    for _ in range(int(np.ceil(np.log2(ndig)))):
        mid = lo_k + hi_k
        mid >>= 1
        c, diff = nearest(mid)
        ok = diff <= tol_above
        ok &= diff >= neg_below
        if uneven.any():  # at a power of two the gap below is half the gap above: the
            # neighbour on the other side may read back when the nearest does not
            step = _POW10_F[ndig - mid]
            other = np.where(diff < 0, diff + step, diff - step)
            swap = uneven & ~ok & (other <= tol_above) & (other >= neg_below)
            if swap.any():
                c = np.where(swap, np.where(diff < 0, c + 1, c - 1), c)
                ok |= swap
        np.copyto(hi_k, mid, where=ok)
        np.copyto(best, c, where=ok)
        mid += 1
        np.copyto(lo_k, mid, where=~ok)
    k = hi_k
    d = best.astype(np.int64)
    carry = d >= _POW10_I[k]  # 9.99 -> 10: one digit, next exponent
    if carry.any():
        d = np.where(carry, 1, d)
        k = np.where(carry, 1, k)
        e = e + carry
    return d, k, e


# character table columns: digits 0..16, then constants, then the exponent
_NDIGCOL = 18
_CONST = b" .-+e0nai f"
_SP, _DOT, _MINUS, _PLUS, _E, _ZERO, _N, _A, _I, _PAD, _F = range(_NDIGCOL, _NDIGCOL + len(_CONST))
_ESIGN = _NDIGCOL + len(_CONST)
_EXP = _ESIGN + 1  # hundreds, tens, ones
_COLS = _EXP + 3
_POS_E = range(-4, 16)
_NE = len(_POS_E) + 2  # positional exponents, then scientific with 2 or 3 exponent digits
_SPECIAL = ("+nan", "+inf", "-inf")


def _layout(k: int, e: int | None, exp_digits: int) -> list[int]:
    """Columns of the character table that spell one number (without sign)."""
    digits = list(range(k))
    if e is None:  # scientific: d[.ddd]e+XX
        body = digits[:1] + ([_DOT] + digits[1:] if k > 1 else [])
        exp = [_EXP + 3 - exp_digits + i for i in range(exp_digits)]
        return body + [_E, _ESIGN] + exp
    if e < 0:  # 0.000ddd
        return [_ZERO, _DOT] + [_ZERO] * (-e - 1) + digits
    if k <= e + 1:  # ddd000.0
        return digits + [_ZERO] * (e + 1 - k) + [_DOT, _ZERO]
    return digits[: e + 1] + [_DOT] + digits[e + 1 :]


def _patterns(width: int, ndig: int) -> tuple[np.ndarray, np.ndarray]:
    """Pattern table (pattern -> columns) and, per pattern, whether it fits the width."""
    table = np.full((ndig * _NE * 2 + len(_SPECIAL), width), _PAD, np.intp)
    fits = np.ones(len(table), bool)
    for k in range(1, ndig + 1):
        for ei in range(_NE):
            e = _POS_E[ei] if ei < len(_POS_E) else None
            cols = _layout(k, e, 2 if ei == len(_POS_E) else 3)
            for neg in (0, 1):
                full = ([_MINUS] if neg else []) + cols
                row = ((k - 1) * _NE + ei) * 2 + neg
                fits[row] = len(full) <= width
                table[row, : min(len(full), width)] = full[:width]
    for i, text in enumerate(_SPECIAL):
        row = ndig * _NE * 2 + i
        table[row, : len(text)] = [{"+": _PLUS, "-": _MINUS, "n": _N, "a": _A, "i": _I, "f": _F}[c] for c in text]
    return table, fits


_TABLES: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def float_cells(values: np.ndarray, width: int | None = None) -> np.ndarray:
    """Cells ``(n, width)`` of uint8: each value's shortest exact text, left-aligned and
    padded with spaces. ``values`` is a 1-D float16/32/64 array."""
    isz = values.dtype.itemsize
    ndig, width = DIGITS[isz], width or WIDTHS[isz]
    key = (width, ndig)
    if key not in _TABLES:
        _TABLES[key] = _patterns(width, ndig)
    table, fits = _TABLES[key]
    n = len(values)
    v = values.astype(values.dtype.newbyteorder("="), copy=False)
    x = np.abs(v).astype(np.float64)
    neg = np.signbit(v)
    finite = np.isfinite(v)
    tiny = np.finfo(v.dtype).tiny
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        normal = finite & (x >= tiny) & (x < 10.0**_EXP_LIMIT) & (x > 10.0**-_EXP_LIMIT)
        xs = np.where(normal, x, 1.0)
        av = np.where(normal, np.abs(v), 1)
        below = xs - np.nextafter(av, 0).astype(np.float64)
        above = np.nextafter(av, np.inf).astype(np.float64) - xs
        # above the largest finite value the gap is that of its binade (beyond: inf)
        gaps = (below, np.where(np.isinf(above), below, above))
    even = (av.view(f"u{isz}") & 1) == 0
    d, k, e = shortest_digits(xs, gaps, even, ndig)
    zero = finite & (x == 0)
    d = np.where(zero, 0, d)
    k = np.where(zero, 1, k)
    e = np.where(zero, 0, e)
    src = np.empty((n, _COLS), np.uint8)
    src[:, _NDIGCOL : _NDIGCOL + len(_CONST)] = np.frombuffer(_CONST, np.uint8)
    src[:, :ndig] = digit_chars(d * _POW10_I[ndig - k], ndig)  # digits left-aligned
    ae = np.abs(e)
    src[:, _ESIGN] = np.where(e < 0, 45, 43)
    src[:, _EXP : _EXP + 3] = _DIG3V[ae].view(np.uint8).reshape(n, 3)
    if isz == 8:  # Python's repr: by the printed exponent
        positional = (e >= -4) & (e < POSITIONAL_BELOW[isz])
    else:  # numpy's str of float32/16: by the value
        positional = zero | ((x >= 1e-4) & (x < 10.0 ** POSITIONAL_BELOW[isz]))
    ei = np.where(positional, e + 4, np.where(ae >= 100, _NE - 1, _NE - 2))
    pid = ((k - 1) * _NE + ei) * 2 + neg
    sci = ((k - 1) * _NE + np.where(ae >= 100, _NE - 1, _NE - 2)) * 2 + neg
    pid = np.where(fits[pid], pid, sci)
    base = ndig * _NE * 2
    pid = np.where(np.isnan(v), base, np.where(np.isinf(v), base + 1 + neg, pid))
    index = table[pid]
    index += (np.arange(n, dtype=np.intp) * _COLS)[:, None]
    out = src.reshape(-1)[index]
    odd = ~(normal | zero | ~finite)
    if odd.any():  # subnormals and extreme exponents: Python's repr
        for i in np.flatnonzero(odd):
            text = _repr(values[i]).encode()[:width].ljust(width)
            out[i] = np.frombuffer(text, np.uint8)
    return out


def _repr(value: Any) -> str:
    return repr(float(value)) if value.dtype.itemsize == 8 else str(value)
