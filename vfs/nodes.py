"""The format-agnostic tree the FUSE adapter serves: folders, files and symlinks.

Each backend (HDF5, SPEC, EDF, plain files) builds these nodes; the adapter only walks
them. Folders build their children lazily and once; files know their size without
reading data; attributes are a lazily computed mapping served as ``user.*`` xattrs.

Inode numbers are stable: they are hashed from what identifies the object (source file
identity plus the object's address or path), so a remount shows the same numbers and
two names of one HDF5 object (a hard link) share one number.

Memory stays bounded however much of the tree is walked: every folder whose children
were built is kept in one LRU (:data:`LIVE`) weighted by the nodes its build made and
the bytes it declared holding (:func:`charge`); past ``limits.MAX_LIVE_NODES`` the
folders used least recently drop their children, which are rebuilt, with the same inode
numbers, when next asked for; the folders the current look-up uses are kept. Texts computed on demand
(:class:`BytesFile`) above ``INLINE_TEXT`` bytes live in a byte-budgeted LRU
(``limits.TEXT_CACHE_BYTES``) and are computed again after eviction.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from cachetools import LRUCache

from vfs.errors import NodeNotFound, NotADirectory
from vfs.limits import MAX_LIVE_NODES, NODE_BYTES, TEXT_CACHE_BYTES

XattrLoader = Callable[[], Mapping[str, bytes]]

ROOT_INO = 1


def make_ino(*parts: object) -> int:
    """Return a stable 63-bit inode number for the object these parts identify."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8", "surrogateescape"), digest_size=8).digest()
    value = int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF
    return value if value > ROOT_INO else value + 2


@dataclass
class Access:
    """Owner, group and permission bits shown for a node and, unless they carry their
    own, every node below it (the one permission rule; docs/layout.md "Permissions").

    ``file_mode`` is for files, ``dir_mode`` for folders. Made by :meth:`of_data_file`
    for the nodes of a data file, :meth:`of_source` for plain files and folders.
    Mutable on purpose: a ``chmod`` of the source updates the one object all of a data
    file's nodes share.
    """

    uid: int
    gid: int
    file_mode: int
    dir_mode: int

    @classmethod
    def of_source(cls, st: os.stat_result) -> Access:
        """A passthrough file or source folder: its own bits, write bits removed."""
        mode = st.st_mode & 0o555
        return cls(st.st_uid, st.st_gid, mode, mode)

    @classmethod
    def of_data_file(cls, st: os.stat_result) -> Access:
        """A data file's virtual entries: its read bits; folders get ``x`` where it has ``r``."""
        read = st.st_mode & 0o444
        return cls(st.st_uid, st.st_gid, read, read | (read >> 2))

    def update(self, other: Access) -> None:
        """Take ``other``'s values in place (the source was chmod'ed or chown'ed)."""
        self.uid, self.gid, self.file_mode, self.dir_mode = other.uid, other.gid, other.file_mode, other.dir_mode


_made = threading.local()  # nodes made by this thread (``count``), to weigh a folder's build
#: the folders this thread's current walk has used (``used``): never dropped for a build during it
_walking = threading.local()


def _made_count() -> int:
    return getattr(_made, "count", 0)


class Node:
    """Something with an inode number, an mtime and extended attributes.

    ``access`` is None for nodes that inherit their parent's (see :func:`resolve`).
    """

    kind: ClassVar[str] = "node"
    access: Access | None = None

    def __init__(self, ino: int, mtime_ns: int, xattrs: XattrLoader | None = None) -> None:
        _made.count = getattr(_made, "count", 0) + 1
        self.ino = ino
        self.mtime_ns = mtime_ns
        self._xattr_loader = xattrs
        self._xattrs: Mapping[str, bytes] | None = None

    def current_access(self) -> Access | None:
        """This node's own access, re-read first where the source can change it."""
        return self.access

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
        if children is not None:
            LIVE.touch(self)
            return children
        weight = 0
        with self._lock:
            result = self._children
            if result is None:
                weight, made = built(self.load)
                self._children = result = made
        if weight:
            LIVE.add(self, weight)
        return result

    def drop(self) -> bool:
        """Forget built children to free memory (rebuilt on demand); False when busy."""
        return if_free(self._lock, lambda: setattr(self, "_children", None))

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


T = TypeVar("T")


def if_free(lock: threading.Lock, action: Callable[[], object]) -> bool:
    """Run ``action`` holding ``lock`` if nobody holds it now; False (not run) otherwise.
    Dropping never waits: a folder being built is not dropped."""
    if not lock.acquire(blocking=False):
        return False
    try:
        action()
    finally:
        lock.release()
    return True


def charge(nbytes: int) -> None:
    """Count ``nbytes`` that the build running on this thread holds besides its nodes
    (text kept for later parsing, a listing's maps) in its weight, one node per
    ``NODE_BYTES``."""
    _made.count = _made_count() + nbytes // NODE_BYTES


def built(make: Callable[[], T]) -> tuple[int, T]:
    """Run ``make`` and return how many nodes it made (not those of builds nested in it,
    which weigh for their own folder) with its result."""
    before = _made_count()
    try:
        result = make()
    finally:
        weight = _made_count() - before
        _made.count = before
    return weight, result


class LiveFolders:
    """The folders whose children are built, least recently used first, with the number
    of nodes each build made; past the budget the oldest drop their children."""

    def __init__(self, budget: int = MAX_LIVE_NODES) -> None:
        self.budget = budget
        self.total = 0
        self.peak = 0  # the largest total after a build's evictions
        self.drops = 0
        self._lru: OrderedDict[Droppable, int] = OrderedDict()
        self._lock = threading.Lock()

    def touch(self, folder: Droppable) -> None:
        used = getattr(_walking, "used", None)
        if used is not None:
            used.append(folder)
        with self._lock:
            if folder in self._lru:
                self._lru.move_to_end(folder)

    def add(self, folder: Droppable, weight: int) -> None:
        """Count a new build; drop the least recently used others while over budget
        (outside every lock but a folder's own, taken without waiting). The folders the
        current walk used (:func:`walk`, :func:`resolve`: the path to this build, with the
        folders a data file's folder wraps) are kept, even past the budget: a folder larger
        than the budget (a source folder of 100,000 files) is not dropped for each data
        file opened in it, nor a file's frame list each time its index is weighed again."""
        used = getattr(_walking, "used", None)
        keep = () if used is None else used
        if used is not None:
            used.append(folder)
        victims: list[Droppable] = []
        with self._lock:
            self.total += weight - self._lru.pop(folder, 0)
            self._lru[folder] = weight
            for victim, w in self._lru.items():  # least recently used first
                if self.total <= self.budget:
                    break
                if victim is not folder and not any(victim is k for k in keep):
                    victims.append(victim)
                    self.total -= w
            for victim in victims:
                del self._lru[victim]
            self.peak = max(self.peak, self.total)
        for victim in victims:  # one that is busy (being rebuilt) counts again when its build ends
            self.drops += victim.drop()

    def __len__(self) -> int:
        return len(self._lru)

    def stats(self) -> dict[str, int]:
        """The counters shown in ``.vfs-stats`` (``live_nodes``)."""
        with self._lock:
            return {"budget": self.budget, "total": self.total, "peak": self.peak, "folders": len(self._lru),
                    "drops": self.drops}


class Droppable(Protocol):
    def drop(self) -> bool: ...


#: the one table of built folders of this process
LIVE = LiveFolders()


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

    def read_into(self, offset: int, dest: Any) -> int | None:
        """Write the bytes from ``offset`` into ``dest`` (a writable uint8 buffer of the
        size asked for) and return how many, or None: then :meth:`read_buffer` serves."""
        return None

    @property
    def cacheable(self) -> bool:
        """Whether the kernel may keep this file's pages across opens."""
        return True


#: computed texts up to this size stay in their node; larger ones go to :data:`TEXTS`
INLINE_TEXT = 1024
#: computed texts, keyed by a token of their node, under one byte budget
TEXTS: LRUCache[object, bytes] = LRUCache(maxsize=TEXT_CACHE_BYTES, getsizeof=len)
_TEXTS_LOCK = threading.Lock()


class BytesFile(File):
    """A file whose whole content is computed on first use: kept in the node when
    small, else in :data:`TEXTS` (computed again once evicted); its size is kept."""

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
        self._size = -1 if self._content is None else len(self._content)
        self._token = object()  # its key in TEXTS (the key must not hold the node alive)

    @property
    def size_ready(self) -> bool:
        return self._content is not None

    def content(self) -> bytes:
        if self._content is not None:
            return self._content
        with _TEXTS_LOCK:
            data = TEXTS.get(self._token)
        if data is None:
            assert self._make is not None
            data = self._make()
            self._size = len(data)
            if len(data) <= INLINE_TEXT:
                self._content = data
            elif len(data) <= TEXTS.maxsize:
                with _TEXTS_LOCK:
                    TEXTS[self._token] = data
        return data

    @property
    def size(self) -> int:
        return self._size if self._size >= 0 else len(self.content())

    def read(self, offset: int, size: int) -> bytes:
        return self.content()[offset : offset + size]


class Symlink(Node):
    """A symbolic link. ``target`` is the wanted text; :meth:`target_at` what readlink
    returns. ``verbatim`` links (symlinks that exist in SOURCE) keep their text as it
    is; every link the mount makes is checked by :func:`contained_target`."""

    kind = "link"

    def __init__(self, ino: int, mtime_ns: int, target: str, xattrs: XattrLoader | None = None,
                 verbatim: bool = False) -> None:
        super().__init__(ino, mtime_ns, xattrs)
        self.target = target
        self.verbatim = verbatim

    def target_at(self, path: str) -> str:
        """The target shown for this link at mount path ``path`` (``/a/b/link``)."""
        return self.target if self.verbatim else contained_target(path, self.target)


#: longest link target shown (PATH_MAX - 1); longer dangling forms are cut
MAX_LINK_TARGET = 4095


def dangling_form(text: str) -> str:
    """A link target that shows ``text`` but cannot be walked: one path component
    (``%`` -> ``%25``, ``/`` -> ``%2F``, NUL -> ``%00``, newline -> ``%0A``), never ``.``
    or ``..``, so at worst it names a sibling inside the mount. External links that do
    not resolve inside the mount are shown as ``dangling_form("FILE::/path")``."""
    out = text.replace("%", "%25").replace("/", "%2F").replace("\0", "%00").replace("\n", "%0A")
    if out.strip(".") == "":
        out = out.replace(".", "%2E") or "%00"
    raw = out.encode("utf-8", "surrogateescape")
    return raw[:MAX_LINK_TARGET].decode("utf-8", "surrogateescape") if len(raw) > MAX_LINK_TARGET else out


def is_contained(depth: int, target: str) -> bool:
    """Whether ``target``, read from a folder ``depth`` levels below the mount root,
    stays inside the mount: relative, at most ``depth`` leading ``..``, then plain
    names only (no ``.``, ``..`` or empty component, no NUL). Names that are links
    themselves are links the mount made (checked the same way) or SOURCE's own."""
    if not target or "\0" in target or target.startswith("/"):
        return False
    if target == ".":
        return True
    parts = target.split("/")
    ups = 0
    while ups < len(parts) and parts[ups] == "..":
        ups += 1
    return ups <= depth and all(p not in ("", ".", "..") for p in parts[ups:])


def contained_target(path: str, target: str) -> str:
    """``target`` if it stays inside the mount from link ``path``, else its dangling form
    (the one place that guarantees no link the mount makes leads outside it)."""
    depth = posixpath.normpath("/" + path.strip("/")).count("/") - 1
    return target if is_contained(depth, target) else dangling_form(target)


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
    outer = getattr(_walking, "used", None)
    if outer is None:  # the outermost walk of this thread (as walking(), inlined: every request walks)
        _walking.used = []
    try:
        for part in parts:
            if not isinstance(node, Directory):
                raise NotADirectory(part)
            node = node.child(part)
    finally:
        if outer is None:
            _walking.used = None
    return node


@contextlib.contextmanager
def walking() -> Iterator[None]:
    """Record the folders used from here to the end of the outermost walk of this thread
    (see :meth:`LiveFolders.add`)."""
    if getattr(_walking, "used", None) is not None:
        yield
        return
    _walking.used = []
    try:
        yield
    finally:
        _walking.used = None


def resolve(root: Directory, path: str, default: Access | None = None) -> tuple[Node, Access | None]:
    """The node at mount ``path`` and its access: its own, else the nearest ancestor's,
    else ``default``. Backends never set access: the tree sets it on source nodes only."""
    node: Node = root
    access = root.current_access() or default
    with walking():
        for part in filter(None, path.split("/")):
            if not isinstance(node, Directory):
                raise NotADirectory(part)
            node = node.child(part)
            access = node.current_access() or access
    return node, access
