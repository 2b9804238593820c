"""Attribute and scalar values as text: one rule for xattrs, ``.attrs.txt`` and headers.

Strings are themselves (bytes decoded as UTF-8, undecodable bytes kept as
``surrogateescape``); numbers use Python's shortest round-trip repr; arrays are their
elements separated by single spaces (strings: by newlines), flattened in C order.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _scalar_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        return value
    if isinstance(value, (np.floating, float)):
        if isinstance(value, np.longdouble) and np.dtype(np.longdouble).itemsize > 8:
            return np.format_float_positional(value, unique=True, trim="-")
        return repr(float(value))
    if isinstance(value, (np.complexfloating, complex)):
        return repr(complex(value)).strip("()")
    if isinstance(value, (np.bool_, bool)):
        return str(int(value))
    if isinstance(value, (np.integer, int)):
        return str(int(value))
    if isinstance(value, np.void) and value.dtype.names:
        return " ".join(_scalar_text(value[name]) for name in value.dtype.names)
    return str(value)


def value_text(value: Any) -> str:
    """The text form of an attribute or scalar value (no trailing newline)."""
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _scalar_text(value[()])
        flat = value.reshape(-1)
        sep = "\n" if value.dtype.kind in "OSU" else " "
        return sep.join(_scalar_text(v) for v in flat)
    if isinstance(value, (list, tuple)):
        return " ".join(_scalar_text(v) for v in value)
    return _scalar_text(value)


def value_bytes(value: Any) -> bytes:
    return value_text(value).encode("utf-8", "surrogateescape")


def attrs_text(attrs: dict[str, Any]) -> bytes:
    """``name = value`` lines (continuation lines indented), for a hidden ``.attrs.txt``."""
    lines = []
    for name, value in attrs.items():
        text = value_text(value).replace("\n", "\n    ")
        lines.append(f"{name} = {text}\n")
    return "".join(lines).encode("utf-8", "surrogateescape")
