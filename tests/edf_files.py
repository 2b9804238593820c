"""Writers of EDF test files with every variation the EDF backend must read.

Written by hand (not with fabio) so the tests control what fabio does not write:
type-name aliases, header sizes, missing keys, odd key names, in-header compression,
general blocks, truncation.
"""

from __future__ import annotations

import bz2
import gzip
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

#: Every DataType name fabio accepts, with the NumPy type it means.
TYPE_NAMES: dict[str, str] = {
    "SignedByte": "i1", "Signed8": "i1", "UnsignedByte": "u1", "Unsigned8": "u1",
    "SignedShort": "i2", "Signed16": "i2", "UnsignedShort": "u2", "Unsigned16": "u2",
    "UnsignedShortInteger": "u2", "SignedInteger": "i4", "Signed32": "i4", "UnsignedInteger": "u4",
    "Unsigned32": "u4", "SignedLong": "i4", "UnsignedLong": "u4", "Signed64": "i8", "Unsigned64": "u8",
    "FloatValue": "f4", "FLOATVALUE": "f4", "FLOAT": "f4", "Float": "f4", "FloatIEEE32": "f4", "Float32": "f4",
    "Double": "f8", "DoubleValue": "f8", "FloatIEEE64": "f8", "DoubleIEEE64": "f8",
}
if np.dtype(np.longdouble).itemsize == 16:
    TYPE_NAMES.update(QuadrupleValue="f16", FloatIEEE128="f16", DoubleIEEE128="f16")
CANONICAL = {"i1": "SignedByte", "u1": "UnsignedByte", "i2": "SignedShort", "u2": "UnsignedShort",
             "i4": "SignedInteger", "u4": "UnsignedInteger", "i8": "Signed64", "u8": "Unsigned64",
             "f4": "FloatValue", "f8": "DoubleValue", "f16": "QuadrupleValue"}


def sample(shape: Sequence[int], code: str, seed: int = 0) -> np.ndarray:
    """Deterministic data of a type, using its whole range where it is an integer."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(code)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=tuple(shape), dtype=dtype, endpoint=True)
    return (rng.standard_normal(tuple(shape)) * 1e3).astype(dtype)


def frame_block(data: np.ndarray, keys: Mapping[str, object] | None = None, *, type_name: str | None = None,
                big_endian: bool = False, header_id: bool = True, size_key: bool = True,
                header_size: int | None = None, compression: str | None = None, image: int = 1,
                byte_order_key: bool = True) -> bytes:
    """One EDF frame (header + data). ``header_size``: total header bytes (any size
    that fits; default the smallest multiple of 512)."""
    code = data.dtype.str[1:]
    name = type_name or CANONICAL[code]
    raw = data.astype(data.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
    if compression == "gzip":
        raw = gzip.compress(raw)
    elif compression == "zlib":
        raw = zlib.compress(raw)
    elif compression == "bz2":
        raw = bz2.compress(raw)
    lines = []
    if header_id:
        lines.append(f"HeaderID = EH:{image:06d}:000000:000000 ;")
    lines.append(f"Image = {image} ;")
    if byte_order_key:
        lines.append(f"ByteOrder = {'HighByteFirst' if big_endian else 'LowByteFirst'} ;")
    lines.append(f"DataType = {name} ;")
    for axis, n in enumerate(reversed(data.shape), start=1):
        lines.append(f"Dim_{axis} = {n} ;")
    if size_key:
        lines.append(f"Size = {len(raw)} ;")
    if compression:
        lines.append(f"Compression = {compression} ;")
    lines += [f"{k} = {v} ;" for k, v in (keys or {}).items()]
    text = ("{\n" + "\n".join(lines) + "\n").encode()
    total = header_size or -(-(len(text) + 2) // 512) * 512
    assert total >= len(text) + 2, "header_size too small"
    return text + b" " * (total - len(text) - 2) + b"}\n" + raw


def write_edf(path: Path, frames: Sequence[bytes], compress: str | None = None, general: bytes = b"") -> Path:
    """Concatenate frame blocks into a file, whole-file gzip/bzip2'ed if asked."""
    blob = general + b"".join(frames)
    if compress == "gzip":
        blob = gzip.compress(blob, compresslevel=1)
    elif compress == "bz2":
        blob = bz2.compress(blob, compresslevel=1)
    path.write_bytes(blob)
    return path


def general_block(keys: Mapping[str, object]) -> bytes:
    """An EDF general block (EDF_DataFormatVersion): defaults for every frame."""
    lines = ["EDF_DataFormatVersion = 2.40 ;", "EDF_BinarySize = 0 ;"]
    lines += [f"{k} = {v} ;" for k, v in keys.items()]
    text = ("{\n" + "\n".join(lines) + "\n").encode()
    total = -(-(len(text) + 2) // 512) * 512
    return text + b" " * (total - len(text) - 2) + b"}\n"
