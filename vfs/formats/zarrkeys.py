"""The keys of a zarr store, read one at a time: a store folder or a zip file.

A zarr store is a mapping of keys (``a/b/.zarray``, ``a/b/c/0/0``) to bytes. Two kinds:

* :class:`FolderKeys`: a folder, one file per key (zarr's ``LocalStore``,
  ``DirectoryStore``, ``NestedDirectoryStore``). Symbolic links inside the store are not
  followed, so a key never leads outside it.
* :class:`ZipKeys`: a zip file (zarr's ``ZipStore``, maxrf4u's ``.datastack``). The
  central directory is read once (:mod:`vfs.formats.zipindex`), when the folder is first opened; after that a key
  is read by its offset with ``pread``: one read of the 30-byte local header (once per
  member) and one of the member's bytes. Stored members are returned as they are;
  deflated members are inflated with zlib, bounded by the size the directory declares;
  other zip methods (bzip2, lzma) go through :mod:`zipfile` under a lock. Encrypted
  members are refused (EIO).

Both answer :meth:`get` (bytes or ``None`` when the key is absent, EIO when it cannot be
read) and :meth:`children` (the direct sub-nodes of a group: names whose folder holds
zarr metadata), and carry ``key``, the source identity the chunk cache uses.
"""

from __future__ import annotations

import os
import struct
import threading
import zipfile
import zlib
from collections.abc import Hashable

from vfs.errors import Unreadable
from vfs.formats import zipindex
from vfs.formats.zipindex import Member
from vfs.identity import SourceIdentity, checked_pread

META_NAMES = ("zarr.json", ".zarray", ".zgroup")
LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
LOCAL_MAGIC = b"PK\x03\x04"


def _parent_and_name(key: str) -> tuple[str, str] | None:
    """``a/b/.zarray`` -> (``a``, ``b``); the root's metadata -> None."""
    folder, _, meta = key.rpartition("/")
    if meta not in META_NAMES or not folder:
        return None
    parent, _, name = folder.rpartition("/")
    return parent, name


class FolderKeys:
    """A zarr store folder."""

    def __init__(self, root: str, st: os.stat_result) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.key: Hashable = ("zarr-dir", st.st_dev, st.st_ino, st.st_mtime_ns)

    def _path(self, key: str) -> str:
        parts = [p for p in key.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise Unreadable(f"{self.root}: key {key!r} leaves the store")
        return os.path.join(self.root, *parts)

    def get(self, key: str, limit: int) -> bytes | None:
        path = self._path(key)
        if "/" in key and not os.path.realpath(path).startswith(self.real_root + os.sep):
            if not os.path.lexists(path):
                return None
            raise Unreadable(f"{path}: a symbolic link inside the store leads out of it")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise Unreadable(f"{path}: {exc.strerror}") from exc
        try:
            size = os.fstat(fd).st_size
            if size > limit:
                raise Unreadable(f"{path}: {size} bytes, more than the {limit} allowed")
            data = os.pread(fd, size, 0)
        finally:
            os.close(fd)
        return data

    def children(self, prefix: str) -> list[str]:
        folder = self._path(prefix) if prefix else self.root
        out = []
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False) and any(
                        os.path.isfile(os.path.join(entry.path, m)) and not os.path.islink(os.path.join(entry.path, m))
                        for m in META_NAMES
                    ):
                        out.append(entry.name)
        except OSError as exc:
            raise Unreadable(f"{folder}: cannot list: {exc.strerror}") from exc
        return sorted(out)

    def has(self, key: str) -> bool:
        return os.path.isfile(self._path(key))


class ZipKeys:
    """A zip file holding a zarr store at its root."""

    def __init__(self, path: str, st: os.stat_result) -> None:
        self.path = path
        self.key = ("zarr-zip", st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        self.identity = SourceIdentity.of(st)  # every read checks the zip is still this one
        self.members = zipindex.index(path, st)
        self._tree: dict[str, list[str]] = {}
        for name in self.members.names_ending(META_NAMES):
            pn = _parent_and_name(name)
            if pn is not None and pn[1]:
                kids = self._tree.setdefault(pn[0], [])
                if pn[1] not in kids:
                    kids.append(pn[1])
        self._data_offset: dict[str, int] = {}
        self._lock = threading.Lock()

    def has(self, key: str) -> bool:
        return key in self.members

    def children(self, prefix: str) -> list[str]:
        return sorted(self._tree.get(prefix, []))

    def _offset(self, key: str, info: Member) -> int:
        off = self._data_offset.get(key)
        if off is None:
            head = checked_pread(self.path, self.identity, LOCAL_HEADER.size, info.header_offset, self.path)
            if len(head) != LOCAL_HEADER.size or head[:4] != LOCAL_MAGIC:
                raise Unreadable(f"{self.path}: member {key!r} has no local header")
            fields = LOCAL_HEADER.unpack(head)
            off = info.header_offset + LOCAL_HEADER.size + fields[9] + fields[10]
            self._data_offset[key] = off
        return off

    def get(self, key: str, limit: int) -> bytes | None:
        info = self.members.get(key)
        if info is None:
            return None
        where = f"{self.path}: member {key!r}"
        if info.size > limit or info.compressed > max(limit, 1 << 16) * 2:
            raise Unreadable(f"{where}: {info.size} bytes, more than the {limit} allowed")
        if info.flags & 0x1:
            raise Unreadable(f"{where}: encrypted")
        if info.method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            with self._lock, zipfile.ZipFile(self.path) as zf, zf.open(key) as fh:
                return fh.read(info.size + 1)[: limit + 1]
        data = checked_pread(self.path, self.identity, info.compressed, self._offset(key, info), where)
        if len(data) != info.compressed:
            raise Unreadable(f"{where}: the file ends before the member does (truncated?)")
        if info.method == zipfile.ZIP_DEFLATED:
            dec = zlib.decompressobj(-15)
            data = dec.decompress(data, info.size)
            if len(data) != info.size or dec.unconsumed_tail:
                raise Unreadable(f"{where}: inflated to {len(data)} bytes, the directory says {info.size}")
        elif len(data) != info.size:
            raise Unreadable(f"{where}: stored member of {len(data)} bytes, the directory says {info.size}")
        return data

    def all_stored(self, prefix: str, size: int) -> bool:
        """Whether every member under ``prefix`` other than metadata is stored as it is
        (not compressed by zip, not encrypted) and holds exactly ``size`` bytes: then
        its bytes can be served straight from the zip file by offset."""
        for name in self.members.names_under(prefix):
            if name.rpartition("/")[2] in META_NAMES + (".zattrs",):
                continue
            info = self.members.get(name)
            if info is None or info.method != zipfile.ZIP_STORED or info.flags & 0x1 or info.size != size:
                return False
        return True

    def data_offset(self, key: str) -> int | None:
        """File offset of a member's bytes (None when there is no such member)."""
        info = self.members.get(key)
        return None if info is None else self._offset(key, info)


Keys = FolderKeys | ZipKeys
