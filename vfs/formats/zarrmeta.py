"""zarr array metadata (v2 ``.zarray``, v3 ``zarr.json``) -> shape, dtype, chunk keys and
a chunk decoder built from numcodecs.

Only metadata is parsed here; nothing reads chunks. What the decoder covers: v2
compressors and filters (any numcodecs codec but ``pickle``, which would run code from
the file), v3 ``bytes``/``transpose``/``zstd``/``blosc``/``gzip``/``crc32c`` and
``vlen-utf8``/``vlen-bytes``. Anything else (sharding, codecs numcodecs does not know,
data types numpy cannot name) gets ``decoder = None``: the array is then read through
the zarr library itself, still one chunk at a time.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numcodecs
import numpy as np
from numcodecs.compat import ensure_ndarray_like

from vfs.errors import Unreadable
from vfs.limits import MAX_CHUNK_BYTES, check_shape
from vfs.selection import Index

REFUSED_CODECS = frozenset({"pickle"})
V3_BYTES_CODECS: dict[str, Callable[[], Any]] = {
    "zstd": lambda: numcodecs.Zstd(),
    "blosc": lambda: numcodecs.Blosc(),
    "gzip": lambda: numcodecs.GZip(),
}
SPECIAL_FLOATS = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}

Decoder = Callable[[bytes], np.ndarray]


@dataclass
class ArrayMeta:
    """What the mount needs to know of one zarr array."""

    shape: Index
    chunks: Index
    dtype: np.dtype[Any]
    fill: Any
    chunk_key: Callable[[Index], str]
    decoder: Decoder | None  # None: read through the zarr library
    refused: str | None = None  # why the data cannot be served (listed, EIO on read)
    raw: bool = False  # a stored chunk is the chunk's C-order bytes as they are (no codec)


def bounded_decode(codec: Any, raw: Any, size: int | None) -> Any:
    """``codec.decode(raw)`` that never produces more than ``size`` bytes (the chunk's
    exact size when known, else ``MAX_CHUNK_BYTES``), so a small chunk that claims to
    inflate to gigabytes is refused before it is allocated (zlib/gzip are inflated here
    with a bound; blosc, zstd and lz4 check their declared size against ``out``)."""
    cid = getattr(codec, "codec_id", "")
    limit = size if size is not None else MAX_CHUNK_BYTES
    if cid in ("zlib", "gzip"):
        dec = zlib.decompressobj(47)  # zlib or gzip header, detected
        out = dec.decompress(bytes(raw), limit + 1)
        if len(out) > limit or dec.unconsumed_tail:
            raise Unreadable(f"a chunk inflates to more than the {limit} bytes it may hold")
        return out
    if cid in ("blosc", "zstd", "lz4") and size is not None:
        return codec.decode(raw, out=np.empty(size, np.uint8))
    return codec.decode(raw)


def _ints(value: Any, what: str) -> Index:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise Unreadable(f"{what} {value!r} is not a list of integers")
    return tuple(value)


def _checked_geometry(shape_v: Any, chunks_v: Any, dtype: np.dtype[Any]) -> tuple[Index, Index]:
    shape = check_shape(_ints(shape_v, "shape"), dtype.itemsize)
    chunks = _ints(chunks_v, "chunks")
    if len(chunks) != len(shape) or any(c <= 0 for c in chunks):
        raise Unreadable(f"chunks {chunks} do not fit shape {shape}")
    if math.prod(chunks) * max(dtype.itemsize, 8 if dtype.kind == "O" else 1) > MAX_CHUNK_BYTES:
        raise Unreadable(f"chunks {chunks} of {dtype} exceed {MAX_CHUNK_BYTES} bytes")
    return shape, chunks


def _v2_dtype(spec: Any) -> np.dtype[Any]:
    def field(f: list[Any]) -> tuple[Any, ...]:
        return (f[0], _v2_dtype(f[1])) if len(f) == 2 else (f[0], _v2_dtype(f[1]), tuple(f[2]))
    if isinstance(spec, list):
        return np.dtype([field(f) for f in spec])
    return np.dtype(spec)


def _fill(value: Any, dtype: np.dtype[Any]) -> Any:
    """A v2 or v3 fill value as a numpy scalar of ``dtype`` (zero when unset)."""
    if dtype.kind == "O":
        return value if isinstance(value, (str, bytes)) else None
    if value is None:
        return np.zeros((), dtype)[()]
    if dtype.names and isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), dtype, count=1)[0]
    if isinstance(value, str) and value in SPECIAL_FLOATS:
        return np.array(SPECIAL_FLOATS[value]).astype(dtype)[()]
    if isinstance(value, str) and value.startswith("0x"):  # v3: the bit pattern
        bits = np.array(int(value, 16), np.dtype(f"u{dtype.itemsize}"))
        return bits.view(dtype.newbyteorder("="))[()]
    if isinstance(value, list) and dtype.kind == "c":
        re, im = (SPECIAL_FLOATS[v] if v in SPECIAL_FLOATS else float(v) for v in value)
        return np.array(complex(re, im), dtype)[()]
    if isinstance(value, str) and dtype.kind in "SV":
        return np.frombuffer(base64.b64decode(value), dtype, count=1)[0]
    return np.array(value).astype(dtype)[()]


def _shaped(buf: Any, dtype: np.dtype[Any], chunks: Index, order: str) -> np.ndarray:
    if dtype.kind == "O":
        arr = buf if isinstance(buf, np.ndarray) else np.array(buf, dtype=object)
    else:
        arr = ensure_ndarray_like(buf).view(dtype)
    arr = arr.reshape(-1, order="A")
    if arr.size != math.prod(chunks):
        raise Unreadable(f"a chunk decoded to {arr.size} elements, expected {math.prod(chunks)}")
    return arr.reshape(chunks, order=order)  # type: ignore[no-any-return, call-overload]


def parse_v2(meta: dict[str, Any]) -> ArrayMeta:
    """``.zarray`` JSON -> :class:`ArrayMeta`."""
    dtype = _v2_dtype(meta["dtype"])
    shape, chunks = _checked_geometry(meta["shape"], meta["chunks"], dtype)
    order = meta.get("order", "C")
    codecs = [c for c in [meta.get("compressor"), *(meta.get("filters") or [])] if c]
    refused = next((f"codec {c.get('id')!r} is not decoded (it could run code)" for c in codecs
                    if c.get("id") in REFUSED_CODECS), None)
    sep = meta.get("dimension_separator") or "."
    compressor = numcodecs.get_codec(meta["compressor"]) if meta.get("compressor") and not refused else None
    filters = [numcodecs.get_codec(f) for f in meta.get("filters") or []] if not refused else []

    exact = math.prod(chunks) * dtype.itemsize if not filters and dtype.kind != "O" else None

    def decode(raw: bytes) -> np.ndarray:
        buf: Any = bounded_decode(compressor, raw, exact) if compressor is not None else raw
        for f in reversed(filters):
            buf = f.decode(buf)
        return _shaped(buf, dtype, chunks, order)

    def key(index: Index) -> str:
        return sep.join(str(i) for i in index) if index else "0"

    raw = compressor is None and not filters and order == "C" and dtype.kind != "O" and not refused
    return ArrayMeta(shape, chunks, dtype, _fill(meta.get("fill_value"), dtype), key, decode, refused, raw)


def _v3_dtype(name: Any) -> np.dtype[Any] | None:
    if name in ("string", "variable_length_utf8"):
        return np.dtype(object)
    if not isinstance(name, str):
        return None
    try:
        dt = np.dtype(name)
    except TypeError:
        return None
    return dt if dt.kind in "biufc" and name == dt.name else None


def parse_v3(meta: dict[str, Any]) -> ArrayMeta | None:
    """``zarr.json`` of an array -> :class:`ArrayMeta`; None where only zarr can decode it."""
    dtype = _v3_dtype(meta.get("data_type"))
    grid = meta.get("chunk_grid") or {}
    if dtype is None or grid.get("name") != "regular":
        return None
    shape, chunks = _checked_geometry(meta["shape"], grid["configuration"]["chunk_shape"], dtype)
    kenc = meta.get("chunk_key_encoding") or {"name": "default"}
    sep = (kenc.get("configuration") or {}).get("separator") or ("/" if kenc.get("name") == "default" else ".")
    prefix = ("c",) if kenc.get("name") == "default" else ()

    def key(index: Index) -> str:
        parts = prefix + tuple(str(i) for i in index)
        return sep.join(parts) if parts else "0"

    transposes: list[Index] = []
    array_codec: dict[str, Any] | None = None
    byte_codecs: list[Any] = []
    for codec in meta.get("codecs") or []:
        name, conf = codec.get("name"), codec.get("configuration") or {}
        if name == "transpose" and array_codec is None:
            transposes.append(tuple(conf["order"]))
        elif name in ("bytes", "vlen-utf8", "vlen-bytes") and array_codec is None:
            array_codec = codec
        elif name in V3_BYTES_CODECS and array_codec is not None:
            byte_codecs.append(V3_BYTES_CODECS[name]())
        elif name == "crc32c" and array_codec is not None:
            byte_codecs.append(None)
        else:
            return None
    if array_codec is None:
        return None
    file_dtype = dtype
    if array_codec["name"] == "bytes" and dtype.itemsize > 1:
        endian = (array_codec.get("configuration") or {}).get("endian", "little")
        file_dtype = dtype.newbyteorder("<" if endian == "little" else ">")
    elif array_codec["name"] != "bytes":
        if dtype.kind != "O":
            return None
        vlen = numcodecs.VLenUTF8() if array_codec["name"] == "vlen-utf8" else numcodecs.VLenBytes()
    stored = list(chunks)
    for order in transposes:
        stored = [stored[i] for i in order]

    exact = math.prod(chunks) * dtype.itemsize if dtype.kind != "O" else None

    def decode(raw: bytes) -> np.ndarray:
        buf: Any = raw
        for k, codec in reversed(list(enumerate(byte_codecs))):
            buf = bytes(buf)[:-4] if codec is None else bounded_decode(codec, buf, exact if k == 0 else None)
        if file_dtype.kind == "O":
            arr = _shaped(vlen.decode(buf), file_dtype, tuple(stored), "C")
        else:
            arr = _shaped(buf, file_dtype, tuple(stored), "C")
        for order in reversed(transposes):
            arr = arr.transpose(np.argsort(order))
        return np.ascontiguousarray(arr)

    raw = not transposes and not byte_codecs and file_dtype.kind != "O"
    return ArrayMeta(shape, chunks, file_dtype, _fill(meta.get("fill_value"), file_dtype), key, decode, None, raw)
