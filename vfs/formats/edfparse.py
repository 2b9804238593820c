"""The EDF header index: where each frame's header and data are, and what the data are.

An EDF file is a sequence of blocks ``{ key = value ; ... }`` each followed by the raw
bytes of one frame. The index reads headers only: it parses a header, computes the size
of the data that follows (``EDF_BinarySize``, else ``Size``, else the size the
dimensions and type imply) and jumps over the data to the next header. It is built
incrementally: asking for frame k reads the headers up to k and no further, so the
first frame of a 20,000-frame (or 4 GB gzip) file is served without scanning the rest.

The parsing rules are fabio's (``fabio.edfimage``), so the mount agrees with fabio:
the header ends at the first ``}`` followed by a newline, lines are split at ``;`` and
at the first ``=``, keys and values are stripped of blanks and NULs, a repeated key
keeps its last value; ``DataType`` defaults to UnsignedShort and ``ByteOrder`` to
LowByteFirst; ``Dim_1`` defaults to 0 and higher ``Dim_n`` to 1; a first block holding
``EDF_DataFormatVersion`` is a general block whose keys are defaults for every frame.
Two deliberate differences: DataType names are also matched without regard to case,
and keys or values that are not ASCII are kept (decoded as UTF-8), not dropped.
"""

from __future__ import annotations

import bz2
import math
import os
import re
import threading
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from vfs.errors import Unreadable
from vfs.formats.edfstream import Stream
from vfs.formats.sniff import GZIP_MAGIC
from vfs.limits import DECOMPRESS_SLACK, MAX_CHUNK_BYTES, MAX_FRAMES, MAX_HEADER, MAX_RANK, check_shape
from vfs.logutil import log_once

BLOCKSIZE = 512
WINDOW = 8192
WHITESPACE = b" \t\r\n\x0b\x0c\x00"
_END = re.compile(rb"}\r?\n")

DATA_TYPES: dict[str, str] = {
    "SignedByte": "i1", "Signed8": "i1", "UnsignedByte": "u1", "Unsigned8": "u1",
    "SignedShort": "i2", "Signed16": "i2", "UnsignedShort": "u2", "Unsigned16": "u2",
    "UnsignedShortInteger": "u2",
    "SignedInteger": "i4", "Signed32": "i4", "UnsignedInteger": "u4", "Unsigned32": "u4",
    "SignedLong": "i4", "UnsignedLong": "u4",
    "Signed64": "i8", "Unsigned64": "u8",
    "FloatValue": "f4", "FLOATVALUE": "f4", "FLOAT": "f4", "Float": "f4", "FloatIEEE32": "f4",
    "Float32": "f4",
    "Double": "f8", "DoubleValue": "f8", "FloatIEEE64": "f8", "DoubleIEEE64": "f8",
}
if np.dtype(np.longdouble).itemsize == 16:  # fabio's float128: x87 extended precision
    DATA_TYPES.update(FloatIEEE128="f16", DoubleIEEE128="f16", QuadrupleValue="f16")
_DATA_TYPES_CI = {name.upper(): code for name, code in DATA_TYPES.items()}

#: Keys that describe the binary layout; a rendering writes its own values for them.
LAYOUT_KEYS = frozenset({"HEADERID", "IMAGE", "BYTEORDER", "DATATYPE", "SIZE", "COMPRESSION"})
#: The keys silx leaves out of ``detector_0/others`` (fabio's RESERVED_HEADER_KEYS).
FABIO_RESERVED = frozenset({"HEADERID", "IMAGE", "BYTEORDER", "DATATYPE", "DIM_1", "DIM_2", "DIM_3", "SIZE"})


def is_layout_key(key: str) -> bool:
    """Whether a rendering regenerates this key (``Dim_n``, ``EDF_*``, type, size...)."""
    upper = key.upper()
    return upper in LAYOUT_KEYS or upper.startswith("EDF_") or bool(re.fullmatch(r"DIM_\d+", upper))


class EdfFormatError(ValueError):
    """The first header of the file is not an EDF header."""


def parse_keys(raw: bytes) -> dict[str, str]:
    """``key = value ;`` pairs of a header block, in order (fabio's splitting rules)."""
    out: dict[str, str] = {}
    for line in raw.split(b";"):
        key, eq, value = line.partition(b"=")
        if eq:
            out[key.strip(WHITESPACE).decode("utf-8", "surrogateescape")] = value.strip(WHITESPACE).decode(
                "utf-8", "surrogateescape")
    return out


def nice_int(text: str) -> int:
    """``"12"`` or ``"12.0"`` -> 12 (fabio's rule); ValueError otherwise."""
    try:
        return int(text)
    except ValueError:
        return int(float(text))


_DTYPES: dict[tuple[str, str], np.dtype[Any]] = {}


def _dtype(code: str, order: str) -> np.dtype[Any]:
    key = (code, order)
    if key not in _DTYPES:
        dt = np.dtype(code)
        _DTYPES[key] = dt.newbyteorder(">" if order == ">" else "<") if dt.itemsize > 1 else dt
    return _DTYPES[key]


@dataclass(slots=True)
class Frame:
    """One frame: where its header and data are, and the data's layout."""

    index: int
    header_offset: int
    data_offset: int
    raw: bytes  # the header text between "{" and "}", as written
    shape: tuple[int, ...]
    dtype: np.dtype[Any] | None  # in the file's byte order; None when DataType is unknown
    blob_size: int  # bytes the data block takes in the stream
    compression: str | None  # None, "gzip", "zlib", "bz2" or an unsupported name
    external: tuple[str, int] | None = None  # (file, offset) from EDF_BinaryFileName
    truncated: bool = False
    refused: str | None = None  # a declared size outside vfs.limits: the data are not read

    @property
    def nbytes(self) -> int:
        """Size of the decoded data."""
        return math.prod(self.shape) * (self.dtype.itemsize if self.dtype is not None else 0)

    @property
    def problem(self) -> str | None:
        """Why this frame's data cannot be served at all, or None."""
        if self.refused:
            return self.refused
        if self.dtype is None:
            return "unknown DataType"
        if self.compression not in (None, "gzip", "zlib", "bz2"):
            return f"unsupported Compression {self.compression}"
        return None


def _compression(value: str | None) -> str | None:
    """fabio's reading of the Compression key."""
    if value is None:
        return None
    upper = value.upper()
    if upper == "NONE" or upper.startswith("NO"):
        return None
    if "OFFSET" in upper:
        return "byte_offset"
    if "GZIP" in upper:
        return "gzip"
    if "BZ" in upper:
        return "bz2"
    if "Z" in upper:
        return "zlib"
    return None  # fabio reads unknown schemes as raw data


def _decoder(kind: str, head: bytes) -> Any:
    if kind == "zlib" and not head.startswith((b"\x78", GZIP_MAGIC)):
        return zlib.decompressobj(-zlib.MAX_WBITS)  # a raw deflate stream
    return zlib.decompressobj(32 + zlib.MAX_WBITS) if kind in ("gzip", "zlib") else bz2.BZ2Decompressor()


def decompress(kind: str, blob: bytes, limit: int) -> bytes:
    """Decompress an in-header-compressed frame, never past ``limit`` bytes (the size its
    header declares, times ``DECOMPRESS_SLACK``): a decompression bomb stops there."""
    return bytes(_decoder(kind, blob).decompress(blob, max(limit * DECOMPRESS_SLACK, 1)))


def compressed_length(kind: str, read: Any, start: int, limit: int, piece: int = 1 << 20) -> int | None:
    """Bytes a compressed block starting at ``start`` takes, found by decoding it in pieces
    (``read(offset, size)``) and throwing the output away; None when it does not end
    within ``limit`` decompressed bytes or is corrupt."""
    dec: Any = None
    pos = start
    produced = 0
    while True:
        chunk = read(pos, piece)
        if not chunk:
            return None
        dec = dec or _decoder(kind, chunk)
        try:
            out = dec.decompress(chunk, limit + 1 - produced)
        except (zlib.error, OSError, EOFError, ValueError):
            return None
        produced += len(out)
        if dec.eof:
            return pos + len(chunk) - len(dec.unused_data) - start
        if produced > limit:
            return None
        left = len(getattr(dec, "unconsumed_tail", b""))
        if kind == "bz2" and not dec.needs_input:
            return None  # bz2 keeps input it has not decoded: more output than the limit
        pos += len(chunk) - left


class _Window:
    """Reads of a stream through a small window, so dense small frames cost few reads."""

    def __init__(self, stream: Stream, size: int = WINDOW) -> None:
        self.stream = stream
        self.size = size
        self.start = 0
        self.buf = b""
        self.at_end = False  # the last read reached the end of the stream
        self.bytes_read = 0

    def get(self, offset: int, n: int) -> bytes:
        """``n`` bytes at ``offset`` (fewer only at the end of the stream)."""
        inside = self.start <= offset <= self.start + len(self.buf)
        if inside and (offset + n <= self.start + len(self.buf) or self.at_end):
            return self.buf[offset - self.start : offset - self.start + n]
        want = max(n, self.size)
        self.buf = self.stream.read(offset, want)
        self.at_end = len(self.buf) < want
        self.bytes_read += len(self.buf)
        self.start = offset
        return self.buf[:n]


class EdfIndex:
    """The frames of one EDF stream, indexed on demand and at most once."""

    def __init__(self, stream: Stream, path: str, label: str, check_data: bool = True) -> None:
        self.stream = stream
        self.path = path
        self.label = label
        self.check_data = check_data  # False: headers only (a probe need not decompress data)
        self.frames: list[Frame] = []
        self.general: dict[str, str] | None = None
        self.general_raw: bytes | None = None
        self.complete = False
        self.stop_reason: str | None = None
        self._pos = 0
        self._window = _Window(stream)
        self._lock = threading.RLock()

    @property
    def bytes_read(self) -> int:
        """Bytes the index itself has read (headers and the windows around them)."""
        return self._window.bytes_read

    # -- scanning ------------------------------------------------------------------------
    def ensure(self, k: int) -> bool:
        """Index frames up to ``k``; whether frame ``k`` exists."""
        if k < len(self.frames):
            return True
        with self._lock:
            while len(self.frames) <= k and not self.complete:
                self._scan_one()
            return k < len(self.frames)

    def count(self) -> int:
        """The number of frames (indexes the whole file)."""
        with self._lock:
            while not self.complete:
                self._scan_one()
        return len(self.frames)

    def frame(self, k: int) -> Frame:
        if not self.ensure(k):
            raise IndexError(k)
        return self.frames[k]

    def _stop(self, reason: str | None) -> None:
        self.complete = True
        self.stop_reason = reason
        if reason:
            if not self.frames:
                raise EdfFormatError(f"{self.label}: {reason}")
            log_once(f"edfstop:{self.label}", f"{self.label}: {reason}; {len(self.frames)} frame(s) indexed")

    def _scan_one(self) -> None:
        pos = self._pos
        win = self._window
        block = win.get(pos, BLOCKSIZE)
        if not block:
            return self._stop(None)
        brace = block.find(b"{")
        if brace < 0:
            if len(block) < BLOCKSIZE and not block.strip(WHITESPACE):
                return self._stop(None)
            return self._stop(f"no header at byte {pos}")
        if block[:brace].strip(WHITESPACE):
            return self._stop(f"data before the header at byte {pos}")
        limit = MAX_HEADER  # bounded: a header never spans more, whatever EDF_HeaderSize says
        size = BLOCKSIZE
        while True:
            buf = win.get(pos, size)
            end = _END.search(buf, brace + 1)
            if end is not None:
                break
            if len(buf) < size or size >= limit:
                return self._stop(f"header at byte {pos} never ends")
            size = min(size * 4, limit)
        raw = buf[brace + 1 : end.start()]
        data_offset = pos + end.end()
        keys = parse_keys(raw)
        if "EDF_DataFormatVersion" in keys and not self.frames and self.general is None:
            self.general, self.general_raw = keys, raw
            self._pos = data_offset + (_int_or(keys.get("EDF_BinarySize"), 0) or 0)
            return None
        if len(self.frames) >= MAX_FRAMES:
            return self._stop(f"more than {MAX_FRAMES} frames; the rest are not indexed")
        frame = self._layout(len(self.frames), pos, data_offset, raw, self.merged(keys))
        self.frames.append(frame)
        self._pos = data_offset + frame.blob_size
        if frame.truncated:
            return self._stop(f"frame {frame.index} is truncated (file ends inside its data)")
        if frame.refused and frame.blob_size == 0 and frame.compression:
            return self._stop(None)  # where its data end is unknown: no next header to look for
        return None

    def _layout(self, index: int, pos: int, data_offset: int, raw: bytes, keys: dict[str, str]) -> Frame:
        caps: dict[str, str] = {}
        for key in keys:
            caps.setdefault(key.upper(), key)
        rank = max((int(k[4:]) for k in caps if k.startswith("DIM_") and k[4:].isdecimal()), default=0)
        shape: list[int] = []
        refused = f"Dim_{rank} declares a rank above {MAX_RANK}" if rank > MAX_RANK else None
        for i in range(rank if not refused else 0, 0, -1):
            dim_key = caps.get(f"DIM_{i}")
            try:
                shape.append(nice_int(keys[dim_key]) if dim_key else (0 if i == 1 else 1))
            except ValueError:
                shape.append(0)
                log_once(f"dim:{self.label}:{i}", f"{self.label}: frame {index}: Dim_{i} is not a number")
        type_name = keys.get(caps["DATATYPE"], "") if "DATATYPE" in caps else "UnsignedShort"
        code = DATA_TYPES.get(type_name) or _DATA_TYPES_CI.get(type_name.upper())
        order = keys.get(caps.get("BYTEORDER", ""), "")
        dtype = _dtype(code, ">" if "High" in order else "<") if code else None
        compression = _compression(keys[caps["COMPRESSION"]] if "COMPRESSION" in caps else None)
        frame = Frame(index, pos, data_offset, raw, tuple(max(n, 0) for n in shape), dtype, 0, compression)
        try:
            check_shape(frame.shape, 1)
        except Unreadable as exc:
            refused = str(exc)
        if refused is None and compression and frame.nbytes > MAX_CHUNK_BYTES:
            refused = f"a compressed frame of {frame.nbytes} bytes, above the limit of {MAX_CHUNK_BYTES}"
        if refused:
            frame.shape, frame.refused = (), refused
        blob = _int_or(keys.get("EDF_BinarySize"), None)
        if blob is None and "SIZE" in caps:
            blob = _int_or(keys[caps["SIZE"]], None)
        if "EDF_BinaryFileName" in keys:
            name = os.path.basename(keys["EDF_BinaryFileName"])
            frame.external = (os.path.join(os.path.dirname(self.path), name),
                              _int_or(keys.get("EDF_BinaryFilePosition"), 0) or 0)
            blob = blob or 0
        if blob is None and compression in ("gzip", "zlib", "bz2") and not refused:
            blob = self._measure_blob(frame) if self.check_data else 0  # a probe reads headers only
        if blob is None:
            blob = frame.nbytes
        frame.blob_size = max(blob, 0)
        if self.check_data and frame.blob_size and not self._window.get(data_offset + frame.blob_size - 1, 1):
            frame.truncated = True
        if frame.problem and self.check_data:  # a probe logs nothing: the tree logs its verdict
            message = problem_message(self.label, frame)
            log_once(message, message)
        return frame

    def _measure_blob(self, frame: Frame) -> int:
        """Size of a compressed data block whose header gives none: decompress it once, in
        pieces, never past the size the header declares; 0 (the frame is refused) when
        the block does not end there."""
        length = compressed_length(frame.compression or "", self.stream.read, frame.data_offset,
                                   frame.nbytes * DECOMPRESS_SLACK)
        if length is None:
            frame.refused = (f"its {frame.compression} data do not end within the {frame.nbytes} bytes "
                             "its header declares (corrupt, or a decompression bomb)")
            return 0
        return length

    # -- headers -------------------------------------------------------------------------
    def merged(self, keys: dict[str, str]) -> dict[str, str]:
        """A frame's keys plus the general block's defaults (fabio's rule)."""
        if not self.general:
            return keys
        out = dict(keys)
        for key, value in self.general.items():
            if not key.startswith("EDF_") and key.upper() not in ("SIZE", "IMAGE", "HEADERID") and key not in out:
                out[key] = value
        return out

    def keys(self, k: int) -> dict[str, str]:
        """Header keys of frame ``k``, as fabio reports them."""
        return self.merged(parse_keys(self.frame(k).raw))

    def header_text(self) -> bytes:
        """Every header block as written (general block first), trailing padding removed."""
        self.count()
        raws = ([self.general_raw] if self.general_raw is not None else []) + [f.raw for f in self.frames]
        return b"".join(b"{" + raw.rstrip(WHITESPACE) + b"\n}\n" for raw in raws)


def problem_message(label: str, frame: Frame) -> str:
    """The one line that says why a frame's data are not served (logged once; the key
    too, so the index and the entry that answers EIO log it once between them)."""
    return f"{label}: frame {frame.index}: {frame.problem}; its data read as EIO"


def _int_or(text: str | None, default: int | None) -> int | None:
    if text is None:
        return default
    try:
        return nice_int(text)
    except ValueError:
        return default
