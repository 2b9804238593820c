"""Recognise data files by their first bytes. Imports nothing heavy.

Each sniffer gets the file's path and its first ``HEAD_SIZE`` bytes and answers yes or
no without parsing the file; a backend may then confirm with a real open (HDF5).
"""

from __future__ import annotations

import bz2
import os
import re
import struct
import zlib

HEAD_SIZE = 4096
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"


def read_head(path: str, size: int = HEAD_SIZE) -> bytes:
    """The first ``size`` bytes (fewer: the whole file); one open and one read, no
    buffered file object (this runs once per file of every listed folder)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def hdf5_userblock(path: str, head: bytes) -> int | None:
    """Offset of the HDF5 superblock (0, 512, 1024, 2048, ...), or None."""
    if head.startswith(HDF5_SIGNATURE):
        return 0
    offset = 512
    while offset + 8 <= len(head):  # the offsets inside the head need no read
        if head[offset : offset + 8] == HDF5_SIGNATURE:
            return offset
        offset *= 2
    if len(head) < HEAD_SIZE:  # the head is the whole file
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        while offset + 8 <= size:
            if os.pread(fd, 8, offset) == HDF5_SIGNATURE:
                return offset
            offset *= 2
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def is_hdf5(path: str, head: bytes) -> bool:
    return hdf5_userblock(path, head) is not None


_SPEC_CONTROL = re.compile(rb"#(@?[A-Za-z]{1,12})\d*(?:[ \t]|$)")
_SPEC_FIRST_KEYS = frozenset(b"F E D S C O o J j N L U P G Q T M V H X R".split())


def is_spec(path: str, head: bytes) -> bool:
    """SPEC: the first non-blank lines are SPEC control lines (``#F``, ``#E``, ``#S``...),
    the first of a kind SPEC writers start with, and one of them is ``#F``, ``#E``,
    ``#D`` or ``#S``. ``# comment`` lines (PyMca's single-column MCA files), shell and C
    text (``#!``, ``#include``) and ``$SPEC_ID`` spectra are not SPEC."""
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    lines = [ln.strip() for ln in head.split(b"\n")[:64]]
    lines = [ln for ln in lines if ln][:8]
    if len(lines) > 1 and len(head) >= HEAD_SIZE:
        lines = lines[:-1] if not head.endswith(b"\n") else lines  # the last one may be cut
    if not lines:
        return False
    keys = []
    for line in lines:
        m = _SPEC_CONTROL.match(line)
        if m is None:
            break
        keys.append(m.group(1))
    if not keys or keys[0] not in _SPEC_FIRST_KEYS:
        return False
    return len(keys) >= min(2, len(lines)) and bool({b"F", b"E", b"D", b"S"} & set(keys))


_EDF_LINE = re.compile(rb"[{\n;]\s*([^=\n;{}]+?)\s*=[^\n]*;")
BZ2_HEAD_INPUT = 2 << 20


def _edf_text(head: bytes) -> bool:
    """A ``{`` (after blanks only) then a ``key = value ;`` line in the first KiB. A
    first key ``HEADER_BYTES`` is an ADSC or d*TREK header (fabio and PyMca read those
    as other formats), not EDF."""
    text = head.lstrip(b" \t\r\n\x00")
    if not text.startswith(b"{"):
        return False
    match = _EDF_LINE.search(text[:1024])
    return match is not None and match.group(1).strip().upper() != b"HEADER_BYTES"


def compression_of(head: bytes) -> str | None:
    """``"gzip"``, ``"bz2"`` or None, from a file's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(BZIP2_MAGIC):
        return "bz2"
    return None


def decompressed_head(path: str, head: bytes) -> bytes | None:
    """First bytes of a gzip or bzip2 file, or None if it is neither.

    bzip2 gives no output before a whole block (up to 900 kB) is decoded, so for bzip2
    the file is read on (up to ``BZ2_HEAD_INPUT`` bytes) until the first output.
    """
    kind = compression_of(head)
    try:
        if kind == "gzip":
            return zlib.decompressobj(zlib.MAX_WBITS | 32).decompress(head, HEAD_SIZE)
        if kind == "bz2":
            dec = bz2.BZ2Decompressor()
            out = dec.decompress(head, HEAD_SIZE)
            with open(path, "rb") as fh:
                fh.seek(len(head))
                while not out and not dec.eof and fh.tell() < BZ2_HEAD_INPUT:
                    more = fh.read(64 << 10)
                    if not more:
                        break
                    out = dec.decompress(more, HEAD_SIZE)
            return out
    except (zlib.error, OSError, EOFError, ValueError):
        return None
    return None


def is_edf(path: str, head: bytes) -> bool:
    """EDF: a ``{`` header block with ``key = value ;`` lines, possibly gzip/bz2'ed."""
    if _edf_text(head):
        return True
    inner = decompressed_head(path, head)
    return inner is not None and _edf_text(inner)


def ripple_raw_path(rpl: str) -> str | None:
    """The ``.raw`` (or ``.RAW``) beside a ``.rpl``, found as RosettaSciIO finds it."""
    for ext in ("raw", "RAW"):
        candidate = rpl[:-3] + ext
        if os.path.isfile(candidate):
            return candidate
    return None


def is_ripple(path: str, head: bytes) -> bool:
    """A Lispix ripple header: ``NAME.rpl`` (or ``.RPL``) with tab-separated lines and
    its ``NAME.raw`` beside it (without the ``.raw`` it stays a plain file)."""
    return path[-4:] in (".rpl", ".RPL") and b"\t" in head and ripple_raw_path(path) is not None


ZARR_META = ("zarr.json", ".zgroup", ".zarray")


def is_zarr_zip(path: str, head: bytes) -> bool:
    """A zip file whose root holds zarr metadata (a zarr ZipStore: ``.zip``, ``.zspy``,
    ``.datastack``). Reads the zip's central directory only."""
    if not head.startswith(b"PK\x03\x04"):
        return False
    from vfs.formats import zipindex

    try:
        members = zipindex.index(path, os.stat(path))
    except (OSError, ValueError, struct.error):
        return False
    return any(name in members for name in ZARR_META)


def is_zarr_folder(path: str) -> bool:
    """A folder holding zarr metadata at its top (a zarr store folder, any name)."""
    return any(os.path.isfile(os.path.join(path, name)) for name in ZARR_META)
