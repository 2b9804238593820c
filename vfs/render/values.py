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


def text_cell(text: str) -> str:
    """A string as one awk column: space, tab, newline, other control characters,
    backslash and double quote become octal escapes (``\\040``, as ``/proc/mounts``
    writes them), undecodable bytes too; an empty string is ``""``."""
    if not text:
        return '""'
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\{code - 0xDC00:03o}")
        elif code <= 32 or code == 127 or ch in '\\"':
            out.append(f"\\{code:03o}")
        else:
            out.append(ch)
    return "".join(out)


def _cells(value: Any, dtype: np.dtype[Any], deref: Any) -> list[str]:
    """The columns of one value of a compound field: nested fields and fixed arrays
    spread over columns; a variable-length sequence is one column, comma separated."""
    if dtype.names:
        return [c for name in dtype.names for c in _cells(value[name], dtype.fields[name][0], deref)]  # type: ignore[index]
    if dtype.subdtype is not None:
        base = dtype.subdtype[0]
        return [c for item in np.asarray(value).reshape(-1) for c in _cells(item, base, deref)]
    value = deref(value)
    if isinstance(value, np.ndarray):
        return [",".join(_scalar_text(v) for v in value.reshape(-1)) or '""']
    return [text_cell(_scalar_text(value))]


def _names(dtype: np.dtype[Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for name in dtype.names or ():
        field = dtype.fields[name][0]  # type: ignore[index]
        full = f"{prefix}{name}"
        if field.names:
            out += _names(field, full + ".")
        elif field.subdtype is not None:
            out += [f"{full}[{i}]" for i in range(int(np.prod(field.subdtype[1])))]
        else:
            out.append(full)
    return out


def records_text(values: np.ndarray, deref: Any = lambda v: v, header: bool = True) -> bytes:
    """A compound array with variable-length members as text: a ``#`` line of field
    names (``header``), then one line per record with its fields as columns (see
    :func:`text_cell`)."""
    top = "# " + " ".join(text_cell(n) for n in _names(values.dtype)) + "\n" if header else ""
    lines = [" ".join(_cells(rec, values.dtype, deref)) + "\n" for rec in values.reshape(-1)]
    return (top + "".join(lines)).encode("utf-8", "surrogateescape")
