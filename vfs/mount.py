"""The FUSE adapter: the only module that imports the binding (mfusepy on libfuse 3).

A client of :class:`vfs.view.View`: the view turns paths into nodes and nodes into
``Stat`` (sizes, modes, inodes); this module turns those into the binding's dicts, serves
bytes straight from the nodes' buffers, and every exception into an errno through one
table. No Python exception reaches the binding: anything
unexpected becomes EIO with its traceback logged at debug level, and the mount stays up.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import itertools
import logging
import os
import posixpath
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")

import mfusepy as fuse  # noqa: E402  (the library name must be set before import)
import numpy as np  # noqa: E402

from vfs.errors import ReadOnly, Unreadable, VfsError  # noqa: E402
from vfs.logutil import log, log_once  # noqa: E402
from vfs.nodes import Directory, File, Node  # noqa: E402
from vfs.view import BLOCK_SIZE, DirListing, View, mode_of  # noqa: E402

READ_AHEAD_KB = 1024

#: libfuse 3's ``FUSE_READDIR_PLUS`` (readdir flags) and ``FUSE_FILL_DIR_PLUS`` (filler flags)
READDIR_PLUS, FILL_DIR_PLUS = 1, 2

F = TypeVar("F", bound=Callable[..., Any])


def errno_of(exc: BaseException) -> int:
    """The errno table: core errors carry theirs; OSErrors keep theirs; the rest is EIO."""
    if isinstance(exc, VfsError):
        return exc.errno or errno.EIO
    if isinstance(exc, fuse.FuseOSError):
        return exc.errno or errno.EIO
    if isinstance(exc, (FileNotFoundError,)):
        return errno.ENOENT
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    if isinstance(exc, MemoryError):
        return errno.ENOMEM
    return errno.EIO


def guarded(method: F) -> F:
    """Run a FUSE operation; map every exception to ``FuseOSError(errno)``."""

    @functools.wraps(method)
    def wrapper(self: VfsOperations, path: str, *args: Any) -> Any:
        try:
            return method(self, path, *args)
        except fuse.FuseOSError:
            raise
        except Exception as exc:
            code = errno_of(exc)
            if code == errno.EIO and not isinstance(exc, Unreadable):  # Unreadable is logged where raised
                log_once(f"eio:{path}:{exc}", f"{method.__name__} {path}: {exc}")
                log.debug("traceback of %s %s", method.__name__, path, exc_info=True)
            raise fuse.FuseOSError(code) from None

    return wrapper  # type: ignore[return-value]


def _read_only(self: VfsOperations, path: str, *args: Any) -> Any:
    raise fuse.FuseOSError(errno.EROFS)


@dataclass
class OpenFolder:
    """A folder between ``opendir`` and ``releasedir``: the snapshot of its children its
    listing was started (or rewound) with, so every page of one listing comes from one
    snapshot even if the folder is rescanned or dropped (``nodes.LIVE``) meanwhile, and
    the reply for plain READDIR pages, made once for that snapshot."""

    node: Directory
    children: Mapping[str, Node] | None = None
    listing: DirListing | None = None


class VfsOperations(fuse.Operations):
    """fusepy-style operations over a :class:`View`."""

    use_ns = True

    def __init__(self, view: View, mountpoint: str = "", read_ahead_kb: int = READ_AHEAD_KB) -> None:
        self.view = view
        self.root = view.root
        self.mountpoint = mountpoint
        self.read_ahead_kb = read_ahead_kb
        self.uid = os.getuid()
        self.gid = os.getgid()
        self.started_ns = time.time_ns()
        self.recent_reads = view.ctx.recent_reads
        self._folders: dict[int, OpenFolder] = {}
        self._folder_numbers = itertools.count(1)

    def node(self, path: str) -> Node:
        return self.view.node(path)

    # -- lifecycle ---------------------------------------------------------------
    def init(self, path: str) -> None:
        if self.mountpoint:
            threading.Thread(target=set_read_ahead, args=(self.mountpoint, self.read_ahead_kb), daemon=True).start()

    # -- metadata ------------------------------------------------------------------
    @guarded
    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        return self.stat_dict(path)

    def stat_dict(self, path: str) -> dict[str, Any]:
        """The ``stat`` fields of ``path`` (getattr, and READDIRPLUS entries)."""
        st = self.view.stat(path)  # owner and modes of the source; link targets kept inside
        out: dict[str, Any] = {
            "st_ino": st.ino,
            "st_uid": self.uid if st.uid is None else st.uid,
            "st_gid": self.gid if st.gid is None else st.gid,
            "st_mtime": st.mtime_ns,
            "st_ctime": st.mtime_ns,
            "st_atime": st.mtime_ns,
            "st_blksize": BLOCK_SIZE,
            "st_mode": st.mode,
            "st_nlink": st.nlink,
            "st_size": st.size,
        }
        if st.kind == "file":
            out["st_blocks"] = -(-st.size // 512)
        return out

    @guarded
    def opendir(self, path: str) -> int:
        node = self.node(path)
        if not isinstance(node, Directory):
            raise fuse.FuseOSError(errno.ENOTDIR)
        number = next(self._folder_numbers)
        self._folders[number] = OpenFolder(node)
        return number

    def releasedir(self, path: str, fh: int) -> int:
        self._folders.pop(fh, None)
        return 0

    def open_folder(self, path: str, fh: int, offset: int) -> OpenFolder:
        """The snapshot a page of the listing of ``path`` (opened as ``fh``) comes from:
        taken at its first page and again when it is read from the start (rewinddir)."""
        folder = self._folders.get(fh)
        if folder is None:  # not opened through opendir (in-process callers)
            node = self.node(path)
            if not isinstance(node, Directory):
                raise fuse.FuseOSError(errno.ENOTDIR)
            folder = OpenFolder(node)
        if folder.children is None or offset == 0:
            folder.children, folder.listing = folder.node.children(), None
        return folder

    @guarded
    def readdir(self, path: str, fh: Any) -> list[tuple[str, dict[str, Any], int]]:
        return [(name, attrs, 0) for name, attrs, _ in self.readdir_page(path, 0, False)]

    @guarded
    def readdir_page(self, path: str, offset: int, plus: bool, fh: int = 0) -> Iterator[tuple[str, dict[str, Any], bool]]:
        """The entries of a folder from position ``offset`` on (``.`` is 0), for libfuse's
        offset mode; each entry's attributes are computed only when the caller takes it.

        With ``plus`` (READDIRPLUS) an entry carries its full attributes (``True``), which
        the kernel keeps, so ``ls -l`` makes no lookup per entry; files whose size needs
        work first (``File.size_ready``: attribute text, scalar values, renderings made on
        first use) keep the short form (mode and inode): a plain listing never reads them."""
        folder = self.open_folder(path, fh, offset)
        assert folder.children is not None
        items = itertools.islice(itertools.chain(((".", folder.node), ("..", self.parent_of(path))),
                                                 folder.children.items()), offset, None)
        base = path.rstrip("/")
        return ((name, *self.entry_attrs(f"{base}/{name}", child, plus)) for name, child in items)

    def parent_of(self, path: str) -> Node:
        """The folder above ``path`` (the root's is the root): ``..`` of a listing."""
        parent = posixpath.dirname(path.rstrip("/")) or "/"
        return self.node(parent)

    def entry_attrs(self, path: str, child: Node | None, plus: bool) -> tuple[dict[str, Any], bool]:
        """One entry of :meth:`readdir_page` (``path``: where it is): its attributes,
        and whether they are full (then exactly what ``getattr`` of ``path`` gives)."""
        name = posixpath.basename(path)
        if plus and child is not None and name not in (".", "..") and (not isinstance(child, File) or child.size_ready):
            try:
                return self.stat_dict(path), True
            except Exception:  # listed all the same; its lookup will say why
                pass
        if child is None:
            return {"st_mode": stat.S_IFDIR}, False
        return {"st_mode": mode_of(child), "st_ino": child.ino}, False

    @guarded
    def listing(self, path: str, fh: int = 0, offset: int = 0) -> DirListing:
        """A folder's names, modes and inode numbers for plain READDIR pages (of the
        snapshot its listing started with, see :meth:`open_folder`)."""
        folder = self.open_folder(path, fh, offset)
        if folder.listing is None:
            folder.listing = self.view.listing_of(folder.node, folder.children)
        return folder.listing

    @guarded
    def readlink(self, path: str) -> str:
        return self.view.readlink(path)

    @guarded
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        return self.view.getxattr(path, name)

    @guarded
    def listxattr(self, path: str) -> list[str]:
        return list(self.node(path).xattrs())

    @guarded
    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": BLOCK_SIZE, "f_frsize": BLOCK_SIZE, "f_namemax": 255}

    @guarded
    def access(self, path: str, amode: int) -> int:
        self.node(path)
        if amode & os.W_OK:
            raise ReadOnly(path)
        return 0

    # -- data ------------------------------------------------------------------------
    @guarded
    def open(self, path: str, fi: Any) -> int:
        if fi.flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND | os.O_CREAT):
            raise ReadOnly(path)
        node = self.node(path)
        if isinstance(node, Directory):
            raise fuse.FuseOSError(errno.EISDIR)
        if not isinstance(node, File):
            raise fuse.FuseOSError(errno.EINVAL)
        node.open()
        fi.fh = 0
        if getattr(node, "direct_io", False):
            fi.direct_io = 1
        return 0

    @guarded
    def read(self, path: str, size: int, offset: int, fh: Any) -> object:
        node = self.node(path)
        if not isinstance(node, File):
            raise fuse.FuseOSError(errno.EISDIR)
        if node.cacheable:
            self.recent_reads.append((path, offset, size))
        return node.read_buffer(offset, size)

    @guarded
    def read_into(self, path: str, offset: int, dest: np.ndarray) -> int | None:
        """As :meth:`read`, written straight into ``dest`` (libfuse's reply buffer) where
        the file can (:meth:`File.read_into`); None otherwise."""
        node = self.node(path)
        if not isinstance(node, File):
            raise fuse.FuseOSError(errno.EISDIR)
        n = node.read_into(offset, dest)
        if n is not None and node.cacheable:
            self.recent_reads.append((path, offset, dest.size))
        return n

    def release(self, path: str, fh: Any) -> int:
        return 0

    # -- everything that would write --------------------------------------------------
    write = create = mkdir = unlink = rmdir = rename = symlink = link = _read_only
    chmod = chown = truncate = utimens = setxattr = removexattr = mknod = _read_only


class VfsFUSE(fuse.FUSE):  # type: ignore[misc]
    """mfusepy's FUSE, with reads copied once, straight from a numpy buffer into libfuse's,
    and READDIRPLUS answered with full attributes (mfusepy gives mode and inode only)."""

    def readdir_fuse_3(self, path: bytes | None, buf: Any, filler: Any, offset: int, fip: Any, flags: int) -> int:
        """Offset mode (libfuse passes a READDIRPLUS entry's attributes to the kernel only
        in that mode): entry ``k`` (``.`` is 0) has offset ``k + 1``; the kernel asks again
        from the offset where the page filled up."""
        plus = bool(flags & READDIR_PLUS)
        decoded = "/" if path is None else path.decode(self.encoding, self.errors)
        fh = fip.contents.fh if fip else 0
        if not plus:
            return self._plain_page(decoded, buf, filler, offset, fh)
        for k, (name, attrs, full) in enumerate(self.operations.readdir_page(decoded, offset, plus, fh), offset + 1):
            st = fuse.c_stat()
            if full:
                fuse.set_st_attrs(st, attrs, use_ns=self.use_ns)
            else:
                st.st_mode, st.st_ino = attrs["st_mode"], attrs.get("st_ino", 0)
            if filler(buf, name.encode(self.encoding, self.errors), st, k, FILL_DIR_PLUS if full else 0):
                break
        return 0

    def _plain_page(self, path: str, buf: Any, filler: Any, offset: int, fh: int = 0) -> int:
        """A plain READDIR page (names, types, inode numbers) from the view's listing kept
        per snapshot of the folder: no per-entry Python objects, so ``ls`` of a folder of
        100,000 files costs one C call per entry. Same offsets as the READDIRPLUS pages."""
        listing = self.operations.listing(path, fh, offset)
        st = fuse.c_stat()
        k = offset
        for name in (".", "..")[k:]:
            st.st_mode, st.st_ino = stat.S_IFDIR, listing.ino if name == "." else 0
            k += 1
            if filler(buf, name.encode(), st, k, 0):
                return 0
        names, modes, inos = listing.names, listing.modes, listing.inos
        encoding, errors = self.encoding, self.errors
        for i in range(k - 2, len(names)):
            st.st_mode = modes[i]
            st.st_ino = inos[i]
            if filler(buf, names[i].encode(encoding, errors), st, i + 3, 0):
                break
        return 0

    def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        fh = fip.contents if self.raw_fi else fip.contents.fh
        decoded = None if path is None else path.decode(self.encoding, self.errors)
        address = ctypes.cast(buf, ctypes.c_void_p).value
        if size and address:  # array bytes land in libfuse's buffer directly: one copy fewer
            dest = np.frombuffer((ctypes.c_char * size).from_address(address), np.uint8)  # type: ignore[call-overload]
            n = self.operations.read_into(decoded, offset, dest)
            if n is not None:
                return int(n)
        data = self.operations.read(decoded, size, offset, fh)
        if isinstance(data, np.ndarray):
            n = min(data.nbytes, size)
            if n:
                ctypes.memmove(buf, data.ctypes.data, n)
            return n
        n = min(len(data), size)
        if n:
            ctypes.memmove(buf, data, n)
        return n


def set_read_ahead(mountpoint: str, kb: int, timeout: float = 10.0) -> None:
    """Set the mount's read-ahead; 1024 KiB makes the kernel send 1 MiB reads (root only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.ismount(mountpoint):
            break
        time.sleep(0.05)
    try:
        dev = os.stat(mountpoint).st_dev
        bdi = f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb"
        with open(bdi, "w") as fh:
            fh.write(str(kb))
        log.debug("read_ahead_kb=%d for %s", kb, mountpoint)
    except OSError as exc:
        log.debug("cannot raise read-ahead of %s: %s", mountpoint, exc)


def run(view: View, mountpoint: str, foreground: bool = True, debug: bool = False,
        options: dict[str, Any] | None = None, read_ahead_kb: int = READ_AHEAD_KB) -> None:
    """Mount ``view`` at ``mountpoint`` and serve until unmounted (blocks)."""
    opts: dict[str, Any] = {
        "fsname": "vfs",
        "subtype": "vfs",
        "ro": True,
        "use_ino": True,
        "auto_cache": True,
        "default_permissions": True,
        # the kernel keeps names and sizes this long: with the source rechecked every
        # 0.25 s, data a writer flushed are seen within 0.75 s (docs/layout.md, Live data)
        "entry_timeout": 0.5,
        "attr_timeout": 0.5,
    }
    opts.update(options or {})
    logging.getLogger("mfusepy").setLevel(logging.DEBUG if debug else logging.ERROR)
    VfsFUSE(VfsOperations(view, mountpoint, read_ahead_kb), mountpoint, raw_fi=True, foreground=foreground,
              debug=debug, **opts)


def library_version() -> str:
    return f"{fuse.fuse_version_major}.{fuse.fuse_version_minor}"
