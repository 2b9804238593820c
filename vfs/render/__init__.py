"""Renderings: an array source -> the bytes of a virtual file, with its size known up front.

Each rendering maps a byte range to an element range and asks the source for those
elements only. ``.npy`` is what ``numpy.save`` writes, ``.txt`` is fixed-width text,
``.edf`` is an EDF image (one frame per image for 3-D data).
"""

from __future__ import annotations

from typing import Protocol


class Rendering(Protocol):
    """What a rendered virtual file needs: its size and ranged reads."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, size: int) -> bytes: ...
