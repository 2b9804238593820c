"""The tree of one SOURCE as a Python API: what the mount shows, without FUSE.

The FUSE adapter (``mount.py``), the fsspec filesystem (``fsspec_fs.py``) and the
command line (``cli_view.py``) are clients of :class:`View`; what a path is, its
``stat`` (kind, size, mode, mtime, inode) and how symlinks resolve are decided here once.

    >>> from vfs.view import View
    >>> v = View("/data/run7")                      # a folder, or one data file
    >>> v.listdir("scan.h5/entry")
    ['data', 'title.txt', ...]
    >>> v.stat("scan.h5/entry/data/data.npy").size
    67108992
    >>> with v.open("scan.h5/entry/data/data.npy") as f:   # io.BufferedReader
    ...     cube = numpy.load(f)
    >>> v.read("scan.h5/entry/title.txt", 0, 100)
    b'my scan\\n'
    >>> v.xattrs("scan.h5/entry")
    {'user.NX_class': b'NXentry'}

Paths are relative to the view's root, ``/``-separated, like the mount's paths below
its mountpoint (a leading ``/`` is ignored). Errors are the core's exceptions, which
are also the builtin ones: ``FileNotFoundError``, ``NotADirectoryError``,
``IsADirectoryError``, ``OSError(EIO)``.
"""

from __future__ import annotations

import errno
import io
import os
import posixpath
import stat as stat_module
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vfs.cache import DEFAULT_BUDGET, ChunkCache
from vfs.context import Context
from vfs.errors import IsADirectory, NoAttribute, NodeNotFound, NotADirectory, Unreadable, VfsError
from vfs.limits import LISTING_CACHE_ENTRIES
from vfs.nodes import Access, Directory, File, Node, Symlink, resolve, walk, walking
from vfs.tree import SourceDirectory, build_root

#: symlinks followed in one lookup before ELOOP (the kernel's limit)
MAX_SYMLINKS = 40
BLOCK_SIZE = 1 << 20
PAGE = 4096
#: the namespace of every extended attribute the tree shows
XATTR_NAMESPACE = "user."

#: permission bits per kind where no source file gives them (see nodes.Access)
PERMISSIONS = {"dir": 0o555, "file": 0o444, "link": 0o777}
FILE_TYPES = {"dir": stat_module.S_IFDIR, "file": stat_module.S_IFREG, "link": stat_module.S_IFLNK}


@dataclass(frozen=True)
class Stat:
    """What ``stat`` tells about one entry (no data read, except for the few sizes
    that need it: short ``.txt`` files and variable-length strings)."""

    kind: str  # "dir", "file" or "link"
    size: int
    mode: int  # file type and permission bits, as st_mode
    mtime_ns: int
    ino: int
    nlink: int
    uid: int | None  # None: the user running the view
    gid: int | None
    target: str | None = None  # for links


def mode_of(node: Node, access: Access | None = None) -> int:
    """``st_mode`` of a node: its kind's type bits and its permissions, those of the
    source file it comes from when ``access`` (see :func:`vfs.nodes.resolve`) is known."""
    if access is not None and node.kind != "link":
        return FILE_TYPES[node.kind] | (access.dir_mode if node.kind == "dir" else access.file_mode)
    return FILE_TYPES[node.kind] | PERMISSIONS[node.kind]


def stat_of(node: Node, access: Access | None = None, path: str | None = None) -> Stat:
    """The :class:`Stat` of a node (the only place sizes, modes and link counts are
    decided, for the mount and every other client). ``access``: owner and permissions
    (None: the user running the view, read-only bits); ``path``: where the node is,
    which decides what a link the mount made shows (:meth:`Symlink.target_at`)."""
    uid, gid = (access.uid, access.gid) if access is not None else (None, None)
    mode = mode_of(node, access)
    if isinstance(node, Directory):
        return Stat("dir", 0, mode, node.mtime_ns, node.ino, 2, uid, gid)
    if isinstance(node, Symlink):
        target = node.target_at(path) if path is not None else node.target
        return Stat("link", len(os.fsencode(target)), mode, node.mtime_ns, node.ino, 1, uid, gid, target)
    if isinstance(node, File):
        return Stat("file", node.size, mode, node.mtime_ns, node.ino, 1, uid, gid)
    raise VfsError(f"unknown node type {type(node).__name__}")


@dataclass(frozen=True)
class DirListing:
    """A folder's entries as a directory reader needs them (``readdir``): names in the
    listing's order, with each entry's ``st_mode`` and inode number (three sequences)."""

    ino: int  # the folder's own
    names: list[str]
    modes: array[int]  # 8 bytes an entry each, not an int object
    inos: array[int]


class ListingCache:
    """:class:`DirListing` of source folders, built once per snapshot of their children.

    A folder's children mapping is immutable: a folder that changes swaps in a new one
    (``vfs/rescan.py``). So the listing built for one mapping object is kept with the
    folder (``SourceDirectory.kept``) and handed out again while the folder still shows
    that same object: a reader that lists a folder of 100,000 files again and again
    (``ls`` in a loop while frames arrive) costs a look-up, not 100,000 entries of
    Python work each time. It is dropped with the folder's listing and counted in its
    weight (``rescan.listing_weight``); a folder of more than ``LISTING_CACHE_ENTRIES``
    entries keeps none. A data file's folder's listing is built per ``readdir``, so
    nothing here holds nodes the bound on built nodes (``nodes.LIVE``) has dropped.
    """

    def __init__(self, max_entries: int = LISTING_CACHE_ENTRIES) -> None:
        self.max_entries = max_entries

    def listing(self, node: Directory, kids: Mapping[str, Node] | None = None) -> DirListing:
        """The reply for ``kids`` (default: the folder's children now)."""
        kids = node.children() if kids is None else kids
        kept = node.kept if isinstance(node, SourceDirectory) else None
        if kept is not None and kept[0] is kids and isinstance(kept[1], DirListing):
            return kept[1]
        nodes = list(kids.values())
        out = DirListing(node.ino, list(kids), array("L", map(mode_of, nodes)), array("Q", [n.ino for n in nodes]))
        if isinstance(node, SourceDirectory) and len(nodes) <= self.max_entries:
            node.keep(kids, out)
        return out


def split(path: str) -> list[str]:
    """``"a/b//c/"`` -> ``["a", "b", "c"]``; ``""`` and ``"/"`` -> ``[]``."""
    return [part for part in path.split("/") if part and part != "."]


class View:
    """The tree a mount of ``source`` would show, as Python objects.

    ``source`` is a folder or a single data file (then the root is that file's folder),
    exactly as for ``vfs mount``. ``cache_size`` is the byte budget of decoded chunks;
    ``formats`` the optional backends (``{"fabio"}``); ``recheck_seconds`` how often a
    folder or data file is compared with its source (files being written).
    """

    def __init__(self, source: str | os.PathLike[str], cache_size: int = DEFAULT_BUDGET,
                 formats: frozenset[str] | set[str] = frozenset(), ctx: Context | None = None,
                 allow_outside: list[str] | tuple[str, ...] = (),
                 recheck_seconds: float = Context.recheck_seconds) -> None:
        self.source = os.path.abspath(os.fspath(source))
        if not os.path.exists(self.source):
            raise NodeNotFound(f"{self.source}: no such file or folder")
        is_dir = os.path.isdir(self.source)
        root_dir = self.source if is_dir else os.path.dirname(self.source)
        self.ctx = ctx or Context(root=os.path.realpath(root_dir), cache=ChunkCache(cache_size),
                                  formats=frozenset(formats), mount_is_folder=is_dir, source=self.source,
                                  allow_outside=tuple(os.path.realpath(p) for p in allow_outside),
                                  recheck_seconds=recheck_seconds)
        self.root = build_root(self.source, self.ctx)
        self._listings = ListingCache()

    # -- lookup ------------------------------------------------------------------------
    def node(self, path: str) -> Node:
        """The node at ``path`` itself (a symlink in the last component is not followed),
        like ``lstat``. The FUSE adapter calls this for every request: the kernel never
        sends a path with a symlink inside, so the plain walk serves it."""
        parts = split(path)
        try:
            return walk(self.root, parts)
        except NotADirectory:
            return self.resolve(path, follow=False)[1]

    def resolve(self, path: str, follow: bool = True) -> tuple[str, Node]:
        """The canonical path and node of ``path``, following symlinks inside the view in
        every component (and in the last one when ``follow``), as the kernel does over a
        mount. A link out of the view or to ``FILE::/path`` dangles: FileNotFoundError."""
        todo = split(path)
        done: list[str] = []
        node: Node = self.root
        hops = 0
        with walking():  # the folders used are kept while it builds (nodes.LIVE)
            while todo:
                part = todo.pop(0)
                if part == "..":
                    done = done[:-1]
                    node = walk(self.root, done)
                    continue
                if not isinstance(node, Directory):
                    raise NotADirectory(f"{'/'.join(done) or '/'}: not a folder")
                child = node.child(part)
                if isinstance(child, Symlink) and (todo or follow):
                    hops += 1
                    if hops > MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, f"{path}: too many levels of symbolic links")
                    target = child.target_at("/".join([*done, part]))
                    if target.startswith("/") or "::" in target:
                        raise NodeNotFound(f"{path}: dangling link to {target}")
                    todo = split(target) + todo
                    node = walk(self.root, done)
                    continue
                done.append(part)
                node = child
        return "/".join(done), node

    def stat(self, path: str, follow_symlinks: bool = False) -> Stat:
        """``lstat`` (default) or ``stat`` of ``path``, with the owner and permissions of
        the source file the entry comes from."""
        if follow_symlinks:
            path = self.resolve(path)[0]
        try:
            node, access = resolve(self.root, path)
        except NotADirectory:  # a symlinked folder on the way: no owner to inherit
            node, access = self.node(path), None
        return stat_of(node, access, path)

    def exists(self, path: str) -> bool:
        try:
            self.resolve(path)
        except (OSError, VfsError):
            return False
        return True

    # -- folders -------------------------------------------------------------------------
    def entries(self, path: str = "") -> Mapping[str, Node]:
        """Name -> node of a folder (symlinks on the way are followed)."""
        node = self.resolve(path)[1]
        if not isinstance(node, Directory):
            raise NotADirectory(f"{path}: not a folder")
        return node.children()

    def listing(self, path: str = "") -> DirListing:
        """A folder's names, modes and inode numbers for a directory reader (the
        mount's ``readdir``): reused while the folder shows the same snapshot."""
        node = self.resolve(path)[1]
        if not isinstance(node, Directory):
            raise NotADirectory(f"{path}: not a folder")
        return self._listings.listing(node)

    def listing_of(self, node: Directory, kids: Mapping[str, Node] | None = None) -> DirListing:
        """As :meth:`listing`, for a folder node already found (and a snapshot of its children)."""
        return self._listings.listing(node, kids)

    def listdir(self, path: str = "") -> list[str]:
        """Names in a folder, hidden ones (``.attrs.txt``) included, in the mount's order."""
        return list(self.entries(path))

    def walk(self, path: str = "") -> Iterator[tuple[str, list[str], list[str]]]:
        """``os.walk`` of the view, top-down, not into symlinked folders."""
        base, _ = self.resolve(path)
        stack = [base]
        while stack:
            top = stack.pop()
            dirs: list[str] = []
            files: list[str] = []
            for name, child in self.entries(top).items():
                (dirs if isinstance(child, Directory) else files).append(name)
            yield top, dirs, files
            stack.extend(posixpath.join(top, d) if top else d for d in reversed(dirs))

    # -- files ---------------------------------------------------------------------------
    def file(self, path: str) -> File:
        """The file at ``path`` (links followed), opened as a reader would: a file that
        cannot be served raises here (EIO), a folder raises IsADirectoryError."""
        node = self.resolve(path)[1]
        if isinstance(node, Directory):
            raise IsADirectory(path)
        if not isinstance(node, File):
            raise NodeNotFound(path)
        node.open()
        return node

    def read(self, path: str, offset: int = 0, size: int = -1) -> bytes:
        """Bytes ``[offset, offset + size)`` of a file (``size < 0``: to the end)."""
        node = self.file(path)
        if size < 0:
            size = max(node.size - offset, 0)
        return read_bytes(node, offset, size)

    def open(self, path: str, buffering: int = BLOCK_SIZE) -> io.BufferedReader:
        """A binary, seekable, read-only file object (``read``, ``readinto``, ``seek``)."""
        return io.BufferedReader(NodeReader(self.file(path), path), buffer_size=max(buffering, 1))

    def readlink(self, path: str) -> str:
        node = self.node(path)
        if not isinstance(node, Symlink):
            raise OSError(errno.EINVAL, f"{path}: not a symbolic link")
        return node.target_at(path)

    def xattrs(self, path: str) -> dict[str, bytes]:
        """All extended attributes of an entry (``user.*`` names), links not followed."""
        return dict(self.node(path).xattrs())

    def getxattr(self, path: str, name: str) -> bytes:
        """One attribute. Every attribute the tree shows is ``user.*``: other names
        (``ls -l`` asks each entry for ``security.selinux`` and
        ``system.posix_acl_access``) are refused without reading any attribute."""
        if not name.startswith(XATTR_NAMESPACE):
            raise NoAttribute(f"{path}: no attribute {name}")
        try:
            return self.node(path).xattrs()[name]
        except KeyError:
            raise NoAttribute(f"{path}: no attribute {name}") from None


def read_bytes(node: File, offset: int, size: int) -> bytes:
    """A file's bytes as ``bytes``, whatever buffer type its read returns."""
    data: Any = node.read_buffer(offset, size)
    if isinstance(data, np.ndarray):
        return data.tobytes()
    return bytes(data)


class NodeReader(io.RawIOBase):
    """A virtual file as a raw binary stream: ``readinto`` copies straight from the
    node's buffer (a numpy array for binary renderings) into the caller's."""

    def __init__(self, node: File, name: str = "") -> None:
        super().__init__()
        self.node = node
        self.name = name
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.node.size}[whence]
        if base + offset < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        try:
            data: Any = self.node.read_buffer(self.pos, len(out))
        except Unreadable:
            # as the kernel does for a mount: a large read that fails is retried for the
            # page it starts in, so bytes before a damaged part stay readable
            page_end = (self.pos // PAGE + 1) * PAGE
            if self.pos + len(out) <= page_end:
                raise
            out = out[: page_end - self.pos]
            data = self.node.read_buffer(self.pos, len(out))
        if isinstance(data, np.ndarray):
            data = data.reshape(-1).view(np.uint8)
        raw = memoryview(data).cast("B")
        n = min(len(raw), len(out))
        out[:n] = raw[:n]
        self.pos += n
        return n
