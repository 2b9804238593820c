"""The format-agnostic tree the FUSE adapter serves: folders, files and symlinks.

Each backend (HDF5, SPEC, EDF, plain files) builds these nodes; the adapter only walks
them. Folders build their children lazily and once; files know their size without
reading data; attributes are a lazily computed mapping served as ``user.*`` xattrs.

Inode numbers are stable: they are hashed from what identifies the object (source file
identity plus the object's address or path), so a remount shows the same numbers and
two names of one HDF5 object (a hard link) share one number.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import ClassVar

from vfs.errors import NodeNotFound, NotADirectory

XattrLoader = Callable[[], Mapping[str, bytes]]

ROOT_INO = 1


def make_ino(*parts: object) -> int:
    """Return a stable 63-bit inode number for the object these parts identify."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8", "surrogateescape"), digest_size=8).digest()
    value = int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF
    return value if value > ROOT_INO else value + 2


class Node:
    """Something with an inode number, an mtime and extended attributes."""

    kind: ClassVar[str] = "node"

    def __init__(self, ino: int, mtime_ns: int, xattrs: XattrLoader | None = None) -> None:
        self.ino = ino
        self.mtime_ns = mtime_ns
        self._xattr_loader = xattrs
        self._xattrs: Mapping[str, bytes] | None = None

    def xattrs(self) -> Mapping[str, bytes]:
        """Full xattr names (``user.NX_class``) to values, computed on first use."""
        if self._xattrs is None:
            self._xattrs = dict(self._xattr_loader()) if self._xattr_loader else {}
        return self._xattrs


class Directory(Node):
    """A folder whose children are computed once, on first listing or lookup.

    Subclasses that follow a changing source (a growing SPEC file, a source folder)
    override :meth:`children` and call :meth:`invalidate` when the source changed.
    """

    kind = "dir"

    def __init__(
        self,
        ino: int,
        mtime_ns: int,
        loader: Callable[[], Mapping[str, Node]] | None = None,
        xattrs: XattrLoader | None = None,
    ) -> None:
        super().__init__(ino, mtime_ns, xattrs)
        self._loader = loader
        self._children: Mapping[str, Node] | None = None
        self._lock = threading.Lock()

    def load(self) -> Mapping[str, Node]:
        """Compute the children; the default calls the loader given at construction."""
        return dict(self._loader()) if self._loader else {}

    def children(self) -> Mapping[str, Node]:
        """Name -> node, in the order the source gives them."""
        children = self._children
        if children is None:
            with self._lock:
                if self._children is None:
                    self._children = self.load()
                children = self._children
        return children

    def invalidate(self) -> None:
        """Forget the children so that the next access recomputes them."""
        with self._lock:
            self._children = None

    def child(self, name: str) -> Node:
        """The child called ``name``; :class:`NodeNotFound` when there is none."""
        try:
            return self.children()[name]
        except KeyError:
            raise NodeNotFound(name) from None


class File(Node):
    """A read-only file: a size known without reading data, and ranged reads."""

    kind = "file"

    @property
    def size(self) -> int:
        raise NotImplementedError

    @property
    def size_ready(self) -> bool:
        """Whether :attr:`size` costs no more than arithmetic now (nothing to read or
        build first): a listing gives the sizes of such files only (READDIRPLUS)."""
        return True

    def open(self) -> None:
        """Called when a reader opens the file: raise to refuse (e.g. EIO) up front."""

    def read(self, offset: int, size: int) -> bytes:
        """Return up to ``size`` bytes at ``offset`` (fewer only at the end of file)."""
        raise NotImplementedError

    def read_buffer(self, offset: int, size: int) -> bytes | memoryview | object:
        """As :meth:`read`; may return a uint8 numpy array to spare the FUSE adapter a copy."""
        return self.read(offset, size)

    @property
    def cacheable(self) -> bool:
        """Whether the kernel may keep this file's pages across opens."""
        return True


class BytesFile(File):
    """A small file whose whole content is computed once, on first use."""

    def __init__(
        self,
        ino: int,
        mtime_ns: int,
        content: bytes | Callable[[], bytes],
        xattrs: XattrLoader | None = None,
    ) -> None:
        super().__init__(ino, mtime_ns, xattrs)
        self._content: bytes | None = content if isinstance(content, bytes) else None
        self._make = None if isinstance(content, bytes) else content

    @property
    def size_ready(self) -> bool:
        return self._content is not None

    def content(self) -> bytes:
        if self._content is None:
            assert self._make is not None
            self._content = self._make()
        return self._content

    @property
    def size(self) -> int:
        return len(self.content())

    def read(self, offset: int, size: int) -> bytes:
        return self.content()[offset : offset + size]


class Symlink(Node):
    """A symbolic link; ``target`` is what readlink returns (usually relative)."""

    kind = "link"

    def __init__(self, ino: int, mtime_ns: int, target: str, xattrs: XattrLoader | None = None) -> None:
        super().__init__(ino, mtime_ns, xattrs)
        self.target = target


class Entries(dict[str, Node]):
    """Children under construction: adds names without ever overwriting one silently.

    A name already taken gets ``~2``, ``~3``... inserted before its extension
    (``data.npy`` -> ``data~2.npy``); docs/layout.md states the rule.
    """

    def add(self, name: str, node: Node) -> str:
        final = name
        n = 1
        while final in self or final in (".", ".."):
            n += 1
            stem, dot, ext = name.rpartition(".")
            final = f"{stem}~{n}.{ext}" if dot and stem else f"{name}~{n}"
        self[final] = node
        return final


def walk(root: Directory, parts: Iterator[str] | list[str]) -> Node:
    """Follow path components from ``root`` (no symlink resolution, like the kernel)."""
    node: Node = root
    for part in parts:
        if not isinstance(node, Directory):
            raise NotADirectory(part)
        node = node.child(part)
    return node
