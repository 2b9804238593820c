"""The header keys of every frame of an image file, sorted the way silx sorts them.

silx's tree for fabio images (``silx.io.fabioh5``) puts ``motor_mne``/``motor_pos``
pairs under ``instrument/positioners``, ``counter_mne``/``counter_pos`` pairs under
``measurement``, and every other key except fabio's layout keys under
``instrument/detector_0/others``; each becomes one value per frame. This module only
collects and types those values; :mod:`vfs.formats.imagetree` makes the files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from vfs.formats.edfparse import FABIO_RESERVED

MAX_XATTR_VALUE = 65536
MAX_XATTR_LIST = 65536
#: the keys silx turns into ``sample/`` (unit cell and UB matrix)
UB_KEYS = frozenset({"UB_mne", "UB_pos", "sample_mne", "sample_pos"})

_INT = re.compile(r"[+-]?\d+\Z")


def header_xattrs(keys: Mapping[str, str]) -> dict[str, bytes]:
    """``user.<key>`` for each header key that fits the kernel's xattr limits (names of
    255 bytes, values of 64 KiB, 64 KiB for the list of names); NUL, which an xattr
    name cannot hold, is dropped."""
    out = {}
    listed = 0
    for key, value in keys.items():
        name = "user." + key.replace("\0", "")
        size = len(name.encode("utf-8", "surrogateescape")) + 1
        data = value.encode("utf-8", "surrogateescape")
        if size <= 256 and len(data) <= MAX_XATTR_VALUE and listed + size <= MAX_XATTR_LIST:
            out[name] = data
            listed += size
    return out


def column(values: list[str | None]) -> np.ndarray | None:
    """One value per frame as int64 or float64 (2-D for several numbers), or None for text.

    A frame without the key gets 0 (integers) or NaN (floats).
    """
    fast = _column_fast(values)
    if fast is not None:
        return fast
    present = [v.split() for v in values if v is not None]
    if not present or not present[0] or any(len(t) != len(present[0]) for t in present):
        return None
    width = len(present[0])
    flat = [t for row in present for t in row]
    try:
        if all(_INT.match(t) for t in flat) and all(abs(int(t)) < 2**63 for t in flat):
            arr = np.array([[int(t) for t in v.split()] if v is not None else [0] * width for v in values], np.int64)
        else:
            arr = np.array([[float(t) for t in v.split()] if v is not None else [np.nan] * width for v in values],
                           np.float64)
    except ValueError:
        return None
    return arr[:, 0] if width == 1 else arr


_INTS = re.compile(r"\s*[+-]?\d+(?:\s+[+-]?\d+)*\s*\Z")
_LONG_INT = re.compile(r"\d{19}")
_BLANK = re.compile(r"\s")


def _column_fast(values: list[str | None]) -> np.ndarray | None:
    """:func:`column` for the common case, every frame holding the key, parsed by numpy
    in one pass (20,000 frames x 30 motors in well under a second); None: use the
    general path (which also decides that a column is text)."""
    if not values or None in values:
        return None
    width = len(values[0].split())  # type: ignore[union-attr]
    if width == 1:  # one token per frame: no blank anywhere, no empty value
        joined = "\0".join(values)  # type: ignore[arg-type]
        if _BLANK.search(joined) or "\0\0" in joined or not values[-1]:
            return None
        text = joined.replace("\0", " ")
    elif not width or any(len(v.split()) != width for v in values):  # type: ignore[union-attr]
        return None
    else:
        text = " ".join(values)  # type: ignore[arg-type]
    if _LONG_INT.search(text):
        return None  # integers of 19 digits or more: the general path decides int64 or float64
    integers = bool(_INTS.match(text))
    try:
        arr = np.fromstring(text, dtype=np.int64 if integers else np.float64, sep=" ")  # noqa: NPY201
    except ValueError:
        return None
    if arr.size != width * len(values):
        return None
    arr = arr.reshape(len(values), width)
    return arr[:, 0] if width == 1 else arr


def pairs(keys: Mapping[str, str], base: str) -> dict[str, str | None]:
    """``<base>_mne`` names zipped with ``<base>_pos`` values (None where a value is missing)."""
    names = keys.get(f"{base}_mne", "").split()
    values = keys.get(f"{base}_pos", "").split()
    return {n: (values[i] if i < len(values) else None) for i, n in enumerate(names)}


class Metadata:
    """Header keys of every frame, sorted into silx's groups (built once, when first
    needed), in time linear in frames: the list of ``n`` values of a name is made once,
    when the name is first met (``setdefault(name, [None] * n)`` made one per frame)."""

    def __init__(self, headers: list[dict[str, str]]) -> None:
        n = len(headers)
        self.frames = n
        self.others: dict[str, list[str | None]] = {}
        self.positioners: dict[str, list[str | None]] = {}
        self.counters: dict[str, list[str | None]] = {}
        others = self.others
        for k, keys in enumerate(headers):
            caught: set[str] = set()
            for base, target in (("motor", self.positioners), ("counter", self.counters)):
                if f"{base}_mne" in keys and f"{base}_pos" in keys:
                    caught |= {f"{base}_mne", f"{base}_pos"}
                    for name, value in pairs(keys, base).items():
                        values = target.get(name)
                        if values is None:
                            values = target[name] = [None] * n
                        values[k] = value
            for key, value in keys.items():
                if key not in caught and key.upper() not in FABIO_RESERVED:
                    values = others.get(key)
                    if values is None:
                        values = others[key] = [None] * n
                    values[k] = value

    def values(self) -> int:
        """How many values it holds (one ``str`` or None per frame and name)."""
        return self.frames * (len(self.others) + len(self.positioners) + len(self.counters))


def sample_arrays(keys: Mapping[str, str]) -> dict[str, np.ndarray]:
    """silx's ``sample/`` arrays from frame 0's ``UB_*``/``sample_*`` keys ({} without them).

    Raises KeyError, TypeError or ValueError when the keys are there but unreadable.
    """
    if not UB_KEYS <= set(keys):
        return {}
    ub, sample = pairs(keys, "UB"), pairs(keys, "sample")
    abc = np.array([sample["U0"], sample["U1"], sample["U2"]], dtype=float)
    angles = np.array([sample["U3"], sample["U4"], sample["U5"]], dtype=float)
    matrix = np.array([[[ub[f"UB{3 * i + j}"] for j in range(3)] for i in range(3)]], dtype=float)
    return {"unit_cell_abc": abc, "unit_cell_alphabetagamma": angles,
            "unit_cell": np.concatenate([abc, angles])[None, :], "ub_matrix": matrix}
