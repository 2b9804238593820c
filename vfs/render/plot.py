"""``plot.png``: a line plot of a 1-D signal against its axis, drawn with Pillow only.

The picture is 640 x 400 pixels, 8-bit grey, stored uncompressed like every preview
(:mod:`vfs.render.png`), so its size is known before it is drawn. The plot area spans
pixels ``x = 80 .. 619`` and ``y = 20 .. 349``; the signal's minimum sits on the bottom
row and its maximum on the top row, the axis' first and last values on the left and
right edges. Five labelled ticks on each axis give the values. A signal longer than the
read budget (:data:`~vfs.limits.PREVIEW_READ_BUDGET`) is drawn from every k-th point; a
signal longer than the plot is wide is drawn as a min/max envelope per pixel column.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from vfs.arrays import ArraySource
from vfs.cache import ChunkCache
from vfs.limits import PREVIEW_READ_BUDGET
from vfs.render.png import CachedPng, encode_png

WIDTH, HEIGHT = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 80, 620, 20, 350  # plot area: [LEFT, RIGHT) x [TOP, BOTTOM)
TICKS = 5


def _read_strided(source: ArraySource, step: int) -> np.ndarray:
    if step == 1:
        return source.read_flat(0, source.size).astype(np.float64)
    return np.array([source.read_flat(i, i + 1)[0] for i in range(0, source.size, step)], np.float64)


def _span(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def plot_values(signal: ArraySource, axis: ArraySource | None) -> tuple[np.ndarray, np.ndarray, int]:
    """The points drawn (x, y) and the stride used."""
    per_point = signal.dtype.itemsize + (axis.dtype.itemsize if axis is not None else 0)
    step = max(math.ceil(signal.size * per_point / PREVIEW_READ_BUDGET), 1)
    y = _read_strided(signal, step)
    if axis is not None and axis.size == signal.size and axis.dtype.kind in "biuf":
        x = _read_strided(axis, step)
    else:
        x = np.arange(0, signal.size, step, dtype=np.float64)
    return x, y, step


def draw_plot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The plot as a (400, 640) uint8 array, black on white."""
    img = Image.new("L", (WIDTH, HEIGHT), 255)
    pen = ImageDraw.Draw(img)
    pen.rectangle((LEFT - 1, TOP - 1, RIGHT, BOTTOM), outline=0)
    (x0, x1), (y0, y1) = _span(x), _span(y)
    for k in range(TICKS):
        fx = x0 + (x1 - x0) * k / (TICKS - 1)
        px = LEFT + (RIGHT - 1 - LEFT) * k / (TICKS - 1)
        pen.line((px, BOTTOM, px, BOTTOM + 5), fill=0)
        pen.text((px, BOTTOM + 8), f"{fx:.4g}", fill=0, anchor="ma")
        fy = y0 + (y1 - y0) * k / (TICKS - 1)
        py = BOTTOM - 1 - (BOTTOM - 1 - TOP) * k / (TICKS - 1)
        pen.line((LEFT - 6, py, LEFT - 1, py), fill=0)
        pen.text((LEFT - 8, py), f"{fy:.4g}", fill=0, anchor="rm")
    ok = np.isfinite(x) & np.isfinite(y)
    px = LEFT + (x[ok] - x0) * ((RIGHT - 1 - LEFT) / (x1 - x0))
    py = TOP + (y1 - y[ok]) * ((BOTTOM - 1 - TOP) / (y1 - y0))
    if px.size > RIGHT - LEFT:  # min/max envelope per pixel column
        cols = np.clip(np.round(px).astype(np.int64), LEFT, RIGHT - 1)
        for col in np.unique(cols):
            ys = py[cols == col]
            pen.line((int(col), float(ys.min()), int(col), float(ys.max())), fill=0)
    elif px.size == 1:
        pen.point((float(px[0]), float(py[0])), fill=0)
    elif px.size:
        pen.line(list(zip(px.tolist(), py.tolist())), fill=0)
    return np.asarray(img, np.uint8)


class PlotRendering(CachedPng):
    """``plot.png`` of a 1-D NXdata signal against its axis (or its index)."""

    def __init__(self, signal: ArraySource, axis: ArraySource | None, title: str,
                 cache: ChunkCache | None = None) -> None:
        super().__init__(cache, WIDTH, HEIGHT, 1, signal.label)
        self.signal, self.axis, self.title = signal, axis, title

    def make(self) -> bytes:
        x, y, step = plot_values(self.signal, self.axis)
        (x0, x1), (y0, y1) = _span(x), _span(y)
        text = (f"vfs plot of {self.title}: {y.size} points (every {step}th); "
                f"x from {x0:.6g} to {x1:.6g}; y from {y0:.6g} to {y1:.6g}")
        return encode_png(draw_plot(x, y), text)
