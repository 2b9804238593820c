"""HDF5/NeXus files as folders.

::

    sample.h5/                      group "/"   (attributes: xattrs user.<name>, .attrs.txt)
      entry/                        group
        data.npy data.txt data.edf  dataset "data" (.edf for 2-D+ numeric images)
        .data.attrs.txt             the dataset's attributes as text (also xattrs on each file)
        title.txt                   scalar or string dataset: its value and a newline
        alias.npy -> data.npy       soft link (one symlink per rendering for datasets)
        ext -> ../other.h5/entry    external link into another file of the mount
        gone -> missing.h5::%2Fentry  external link that cannot resolve: one component
                                    that names no file (see vfs.nodes.dangling_form)

Names are HDF5's own (any bytes but ``/`` and NUL, which HDF5 cannot hold either);
clashes get ``~2`` (see :class:`vfs.nodes.Entries`). Hard links share one inode number,
hashed from the object's address. Nothing here reads data: sizes come from shape and
dtype.
"""

from __future__ import annotations

import os
import posixpath
import time
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from vfs.arrays import ArraySource
from vfs.context import Context
from vfs.formats.conventions import add_conventions
from vfs.formats.h5arrays import clean_dtype, element_layout, make_source
from vfs.formats.h5outside import OutsideGuard, follow_internal, outside_sources
from vfs.formats.h5pool import H5_LOCK, POOL, fit
from vfs.formats.sniff import is_hdf5, read_head
from vfs.errors import Unreadable
from vfs.identity import SourceIdentity
from vfs.lazyarrays import LazySource
from vfs.limits import MAX_CHUNK_BYTES, MAX_TEXT, check_count, check_shape
from vfs.logutil import log_once
from vfs.errors import Unreadable
from vfs.naming import safe_name, safe_path
from vfs.nodes import BytesFile, Directory, Entries, Node, Symlink, dangling_form, make_ino
from vfs.render.edf import kept_value
from vfs.render.files import BrokenFile, add_array_files, suffixes_for
from vfs.render.npy import npy_supported
from vfs.limits import MAX_TEXT
from vfs.render.values import attrs_text, records_text, value_bytes

XATTR_PREFIX = "user."


def _decode(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


def _encode(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def read_attrs(obj: h5py.HLObject, where: str) -> dict[str, Any]:
    """Attribute name -> value; attributes h5py cannot read are skipped and logged once."""
    out: dict[str, Any] = {}
    try:
        names = list(obj.attrs.keys())
    except Exception as exc:
        log_once(f"attrs:{where}", f"{where}: attributes unreadable: {exc}")
        return out
    for name in names:
        try:
            check_attr(obj, name)
            out[name] = obj.attrs[name]
        except Exception as exc:
            log_once(f"attr:{where}:{name}", f"{where}: attribute {name!r} unreadable: {exc}")
    return out


def check_attr(obj: h5py.HLObject, name: str) -> None:
    """Refuse (:class:`Unreadable`) an attribute whose declared shape and type would take
    more than ``limits.MAX_TEXT`` bytes, before h5py allocates for it."""
    aid = h5py.h5a.open(obj.id, _encode(name))
    shape = aid.shape or ()
    check_shape(tuple(shape), 1)
    check_count("attribute bytes", int(np.prod(shape, dtype=object)) * max(aid.dtype.itemsize, 1), MAX_TEXT)


class H5File:
    """One source HDF5 file as seen by the mount: its path, identity and mount position."""

    def __init__(self, path: str, ident: SourceIdentity, ctx: Context) -> None:
        self.path = path
        self.ctx = ctx
        self.identity = ident
        self.fid = ("h5", ident.dev, ident.ino)
        self.key = ident.key
        self.mtime_ns = ident.mtime_ns
        self.mount_path = ("/" + os.path.relpath(os.path.realpath(path), ctx.root)) if ctx.mount_is_folder else ""

    def file(self) -> h5py.File:
        """The open file, checked to be the version the nodes were built from (with
        :data:`H5_LOCK` held)."""
        return POOL.get(self.path, self.identity)

    def xattr_loader(self, h5name: bytes) -> Any:
        def load() -> Mapping[str, bytes]:
            with H5_LOCK:
                obj = self.file()[h5name]
                attrs = read_attrs(obj, f"{self.path}:{_decode(h5name)}")
            return {XATTR_PREFIX + k: value_bytes(v) for k, v in attrs.items()}
        return load

    def attrs_file(self, h5name: bytes, ino: int) -> BytesFile:
        def make() -> bytes:
            with H5_LOCK:
                obj = self.file()[h5name]
                return attrs_text(read_attrs(obj, f"{self.path}:{_decode(h5name)}"))
        return BytesFile(ino, self.mtime_ns, make)


class H5Group(Directory):
    """An HDF5 group as a folder; members are listed on first access.

    External links whose file is missing or cannot be opened yet (a data file of a
    master still being written) are looked at again, at most every
    ``recheck_seconds``: when their file changed, the group is listed again.
    """

    def __init__(self, h5: H5File, h5name: bytes, ino: int) -> None:
        super().__init__(ino, h5.mtime_ns, xattrs=h5.xattr_loader(h5name))
        self.h5 = h5
        self.h5name = h5name
        self._unresolved: dict[str, tuple[int, int] | None] = {}  # file -> (size, mtime) seen
        self._checked = 0.0

    def children(self) -> Mapping[str, Node]:
        if self._unresolved and time.monotonic() - self._checked > self.h5.ctx.recheck_seconds:
            self._checked = time.monotonic()
            if any(_seen(path) != seen for path, seen in self._unresolved.items()):
                self._unresolved = {}
                self.invalidate()
        return super().children()

    @property
    def group_path(self) -> str:
        return _decode(self.h5name) if self.h5name != b"/" else "/"

    def load(self) -> Mapping[str, Node]:
        entries = Entries()
        with H5_LOCK:
            grp = self.h5.file()[self.h5name]
            if h5py.h5o.get_info(grp.id).num_attrs:
                entries.add(".attrs.txt", self.h5.attrs_file(self.h5name, make_ino(*self.h5.fid, self.h5name, "attrs")))
            for bname in grp.id.__iter__():
                try:
                    self._add_member(entries, grp, bname)
                except Exception as exc:
                    where = f"{self.h5.path}:{posixpath.join(self.group_path, _decode(bname))}"
                    reason = f"{where}: cannot be opened: {type(exc).__name__}: {exc}"
                    log_once(reason, reason)
                    broken = BrokenFile(make_ino(*self.h5.fid, self.h5name, bname), self.h5.mtime_ns, reason)
                    entries.add(safe_name(_decode(bname)), broken)
            view = H5View(self.h5, grp, self.h5name)
            view.group_names = [n for n, node in entries.items()  # soft links to groups too
                            if isinstance(node, H5Group) or (isinstance(node, Symlink) and view.group(n))]
            add_conventions(entries, view, (*self.h5.fid, self.h5name, "conv"), self.h5.mtime_ns, self.h5.ctx.cache)
        return entries

    def _child_name(self, bname: bytes) -> bytes:
        return (self.h5name.rstrip(b"/") + b"/" + bname) if self.h5name != b"/" else b"/" + bname

    def _add_member(self, entries: Entries, grp: h5py.Group, bname: bytes) -> None:
        name = safe_name(_decode(bname))
        link = grp.id.links.get_info(bname)
        full = self._child_name(bname)
        if link.type == h5py.h5l.TYPE_SOFT:
            target = _decode(grp.id.links.get_val(bname))
            self._add_soft(entries, grp, bname, name, target)
        elif link.type == h5py.h5l.TYPE_EXTERNAL:
            filename, objpath = grp.id.links.get_val(bname)
            self._add_external(entries, name, _decode(filename), _decode(objpath))
        else:  # low-level ids: no h5py.Dataset/Group objects (their set-up costs more than this)
            obj = h5py.h5o.open(grp.id, bname)
            info = h5py.h5o.get_info(obj)
            ino = make_ino(*self.h5.fid, info.addr)
            if isinstance(obj, h5py.h5g.GroupID):
                entries.add(name, H5Group(self.h5, full, ino))
            elif isinstance(obj, h5py.h5d.DatasetID):
                add_dataset(entries, self.h5, obj, full, name, ino, info.num_attrs)
            elif isinstance(obj, h5py.h5t.TypeID):
                text = f"{obj.dtype!r}\n".encode()
                entries.add(f"{name}.dtype.txt", BytesFile(ino, self.h5.mtime_ns, text))

    def _view_dir(self) -> str:
        return posixpath.join(self.h5.mount_path or "/", safe_path(self.group_path.lstrip("/")))

    def _add_soft(self, entries: Entries, grp: h5py.Group, bname: bytes, name: str, target: str) -> None:
        abs_target = posixpath.normpath(posixpath.join(self.group_path, target))
        here = posixpath.normpath(self.group_path)
        ino = make_ino(*self.h5.fid, self.h5name, bname, "soft")
        try:
            obj = follow_internal(grp.file, abs_target)
        except Exception:
            obj = None
        if isinstance(obj, h5py.Dataset):
            for suffix in dataset_suffixes(obj):
                rel = posixpath.relpath(f"{safe_path(abs_target)}.{suffix}", safe_path(here))
                entries.add(f"{name}.{suffix}", Symlink(make_ino(ino, suffix), self.h5.mtime_ns, rel))
            return
        entries.add(name, Symlink(ino, self.h5.mtime_ns, posixpath.relpath(safe_path(abs_target), safe_path(here))))

    def _add_external(self, entries: Entries, name: str, filename: str, objpath: str) -> None:
        ino = make_ino(*self.h5.fid, self.h5name, name, "external")
        here_view = self._view_dir()
        other = filename if os.path.isabs(filename) else os.path.join(os.path.dirname(self.h5.path), filename)
        target = dangling_form(f"{filename}::{objpath}")
        ctx = self.h5.ctx
        inside = ctx.mount_is_folder and ctx.inside(other)  # never open a file outside SOURCE
        if inside and (not os.path.isfile(other) or not _opens(other)):
            self._unresolved[other] = _seen(other)
        if inside and os.path.isfile(other):
            other_view = "/" + os.path.relpath(os.path.realpath(other), ctx.root)
            obj_view = posixpath.normpath(posixpath.join(other_view, safe_path(objpath.lstrip("/"))))
            suffixes = _external_dataset_suffixes(other, objpath)
            if suffixes:
                for suffix in suffixes:
                    rel = posixpath.relpath(f"{obj_view}.{suffix}", here_view)
                    entries.add(f"{name}.{suffix}", Symlink(make_ino(ino, suffix), self.h5.mtime_ns, rel))
                return
            target = posixpath.relpath(obj_view, here_view)
        entries.add(name, Symlink(ino, self.h5.mtime_ns, target))


def _seen(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def _opens(path: str) -> bool:
    """Whether HDF5 can open ``path`` now (call with :data:`H5_LOCK` held)."""
    try:
        POOL.get(path)
    except Exception:
        return False
    return True


def _external_dataset_suffixes(path: str, objpath: str) -> list[str]:
    """Renderings of the dataset an external link points at ([] if a group or unreadable)."""
    try:
        if not is_hdf5(path, read_head(path)):
            return []
        obj = follow_internal(POOL.get(path), posixpath.normpath("/" + objpath))
    except Exception:
        return []
    return dataset_suffixes(obj) if isinstance(obj, h5py.Dataset) else []


def dataset_suffixes(ds: h5py.Dataset) -> list[str]:
    """The file suffixes a dataset gets, without building its source."""
    try:
        dt = clean_dtype(ds.dtype)
        shape = ds.shape
    except Exception:
        return ["npy"]
    if shape is None or dt.kind == "O" or dt.hasobject:
        return ["txt"]
    if shape == ():
        return ["npy", "txt"] if npy_supported(dt) else ["txt"]
    if dt.subdtype is not None:
        return suffixes_for(tuple(shape) + tuple(dt.subdtype[1]), dt.subdtype[0])
    return suffixes_for(tuple(shape), dt)


def add_dataset(entries: Entries, h5: H5File, ds: h5py.h5d.DatasetID, h5name: bytes, name: str, ino: int,
                num_attrs: int) -> None:
    """Add the files of one dataset (call with :data:`H5_LOCK` held). Only its shape and
    dtype are read; its source is built when first read (:func:`lazy_source`)."""
    where = f"{h5.path}:{_decode(h5name)}"
    xattrs = h5.xattr_loader(h5name)
    if num_attrs:
        entries.add(f".{name}.attrs.txt", h5.attrs_file(h5name, make_ino(ino, "attrs")))
    try:
        dtype = clean_dtype(ds.dtype)
        shape = ds.shape
    except Exception as exc:
        reason = f"{where}: unsupported datatype: {exc}"
        entries.add(f"{name}.npy", BrokenFile(make_ino(ino, "npy"), h5.mtime_ns, reason, xattrs))
        return
    try:
        check_declared(ds, shape, dtype)
    except Unreadable as exc:
        reason = f"{where}: {exc.strerror}; not served"
        for suffix in dataset_suffixes(ds):
            entries.add(f"{name}.{suffix}", BrokenFile(make_ino(ino, suffix), h5.mtime_ns, reason, xattrs))
        return
    if shape is None:  # NULL dataspace: no value at all
        entries.add(f"{name}.txt", BytesFile(make_ino(ino, "txt"), h5.mtime_ns, b"", xattrs))
        return
    guard = OutsideGuard(h5.path, h5name, h5.ctx, where)  # bytes outside SOURCE: EACCES at open
    if dtype.hasobject or shape == ():  # variable-length members: text read when first needed
        entries.add(f"{name}.txt", BytesFile(make_ino(ino, "txt"), h5.mtime_ns, _eager_text(h5, h5name, guard),
                                             xattrs))
        if dtype.hasobject:
            return
    label = f"{h5.path}:{_decode(h5name)}"
    with_attrs = num_attrs > 0 and len(shape) >= 2 and dtype.kind in "biuf"  # .edf header keys
    source = lazy_source(h5, ds, h5name, label, with_attrs)
    if shape == ():  # the .txt of a scalar is its value, added above
        if npy_supported(source.dtype):
            add_array_files(entries, name, source, (ino,), h5.mtime_ns, xattrs, ["npy"], guard=guard)
        return
    if not add_array_files(entries, name, source, (ino,), h5.mtime_ns, xattrs, cache=h5.ctx.cache, guard=guard):
        reason = f"{where}: no rendering for datatype {dtype}"
        entries.add(f"{name}.npy", BrokenFile(make_ino(ino, "npy"), h5.mtime_ns, reason, xattrs))


def lazy_source(h5: H5File, ds: h5py.h5d.DatasetID, h5name: bytes, label: str, with_attrs: bool) -> LazySource:
    """A source with the dataset's shape and dtype, built by :func:`make_source` on
    first read; its attributes (``with_attrs``) are read when first asked for."""
    shape, dtype = element_layout(ds)  # type: ignore[arg-type]  # a DatasetID has shape and dtype
    where = f"{h5.path}:{_decode(h5name)}"

    def attrs() -> Mapping[str, Any]:
        """The attributes as the renderings keep them: a large value as the text a header
        shows of it (the node keeps them while it lives: a bounded size per attribute)."""
        with H5_LOCK:
            found = read_attrs(h5.file()[h5name], where)
        return {name: kept_value(value) for name, value in found.items()}

    def build() -> ArraySource:
        with H5_LOCK:
            dataset = h5.file()[h5name]  # the version the folder was listed from, or EIO
            return make_source(h5.path, dataset, h5name, label, (h5.key, h5name), h5.ctx.cache,
                               None, h5.identity)  # attributes: the lazy source's, read when asked for

    source = LazySource(shape, dtype, label, build, attrs if with_attrs else None, H5_LOCK)
    return source


class H5View:
    """One open group as :class:`vfs.formats.conventions.GroupView` (use with
    :data:`H5_LOCK` held). Hard and soft links are followed; external links are not."""

    def __init__(self, h5: H5File, grp: h5py.Group, h5name: bytes) -> None:
        self.h5, self.grp, self.h5name = h5, grp, h5name
        #: member groups in order, when the caller knows them (else found on first use)
        self.group_names: list[str] | None = None
        self.path = _decode(h5name) if h5name != b"/" else "/"
        self._attrs: dict[str, Any] | None = None

    def attrs(self) -> Mapping[str, Any]:
        if self._attrs is None:
            self._attrs = read_attrs(self.grp, f"{self.h5.path}:{self.path}")
        return self._attrs

    def members(self) -> list[str]:
        return [_decode(b) for b in self.grp.id.__iter__()]

    def _get(self, name: str) -> Any:
        bname = _encode(name)
        try:
            if not self.grp.id.links.exists(bname):
                return None
            kind = self.grp.id.links.get_info(bname).type
            if kind == h5py.h5l.TYPE_EXTERNAL:
                return None
            if kind == h5py.h5l.TYPE_SOFT:  # never through an external link on the way
                return follow_internal(self.grp.file, posixpath.join(self.path, name))
            return self.grp.get(bname)
        except Exception:
            return None

    def _full(self, name: str) -> bytes:
        return (self.h5name.rstrip(b"/") + b"/" + _encode(name)) if self.h5name != b"/" else b"/" + _encode(name)

    def member_attrs(self, name: str) -> Mapping[str, Any]:
        obj = self._get(name)
        return read_attrs(obj, f"{self.h5.path}:{_decode(self._full(name))}") if obj is not None else {}

    def shape(self, name: str) -> tuple[int, ...] | None:
        obj = self._get(name)
        if not isinstance(obj, h5py.Dataset) or obj.shape is None:
            return None
        return tuple(obj.shape)

    def array(self, name: str) -> ArraySource | None:
        obj = self._get(name)
        if not isinstance(obj, h5py.Dataset) or obj.shape is None or clean_dtype(obj.dtype).kind == "O":
            return None
        full = self._full(name)
        label = f"{self.h5.path}:{_decode(full)}"
        if outside_sources(self.h5.path, obj, self.h5.ctx, label) is not None:
            return None  # no plot or axis computed from bytes outside SOURCE
        return make_source(self.h5.path, obj, full, label, (self.h5.key, full), self.h5.ctx.cache,
                           identity=self.h5.identity)

    def groups(self) -> list[str]:
        if self.group_names is None:
            self.group_names = [n for n in self.members() if isinstance(self._get(n), h5py.Group)]
        return self.group_names

    def group(self, name: str) -> H5View | None:
        obj = self._get(name)
        return H5View(self.h5, obj, self._full(name)) if isinstance(obj, h5py.Group) else None


def check_declared(ds: h5py.h5d.DatasetID, shape: tuple[int, ...] | None, dtype: np.dtype[Any]) -> None:
    """Refuse (:class:`Unreadable`) a dataset whose declared rank, element count or chunk
    size is outside ``vfs.limits``, before any source or table is built for it."""
    if shape is None:
        return
    check_shape(tuple(shape), dtype.itemsize)
    dcpl = ds.get_create_plist()
    chunks = dcpl.get_chunk() if dcpl.get_layout() == h5py.h5d.CHUNKED else None
    if chunks:
        check_count("chunk bytes", int(np.prod(chunks, dtype=object)) * max(dtype.itemsize, 1), MAX_CHUNK_BYTES)


#: rows of a variable-length dataset read at a time while its text is made
TEXT_ROWS = 4096


def _eager_text(h5: H5File, h5name: bytes, guard: OutsideGuard) -> Any:
    """Text of a scalar or variable-length dataset, read when first needed, a block of
    rows at a time; more than ``limits.MAX_TEXT`` bytes of text is refused (EIO)."""
    def make() -> bytes:
        where = f"{h5.path}:{_decode(h5name)}"
        guard()
        with H5_LOCK:
            ds = h5.file()[h5name]
            deref = lambda v: _deref(ds.file, v)  # noqa: E731
            if ds.shape == ():
                value = ds[()]
                if isinstance(value, np.void) and value.dtype.hasobject:
                    return records_text(np.asarray(value), deref)
                return value_bytes(deref(value)) + b"\n"
            step = max(1, TEXT_ROWS // max(1, int(np.prod(ds.shape[1:]))))
            parts, total = [], 0
            for start in range(0, ds.shape[0], step):
                block = np.asarray(ds[start : start + step])
                if block.dtype.names:
                    text = records_text(block, deref, header=start == 0)
                else:
                    lines = [value_bytes(deref(v)) for v in block.reshape(-1)]
                    text = b"".join(line.replace(b"\n", b" ") + b"\n" for line in lines)
                total += len(text)
                if total > MAX_TEXT:
                    reason = f"{where}: its text exceeds {MAX_TEXT} bytes; not shown"
                    log_once(reason, reason)
                    raise Unreadable(reason)
                parts.append(text)
            return b"".join(parts)
    return make


def _deref(f: h5py.File, value: Any) -> Any:
    if isinstance(value, h5py.Reference):
        try:
            return f[value].name if value else ""
        except Exception:
            return "<dangling reference>"
    return value


def probe(path: str, ctx: Context) -> None:
    """Open the file (it stays in the pool): raises if HDF5 cannot read it."""
    fit(ctx.cache)
    with H5_LOCK:
        POOL.get(path)


def open_folder(path: str, st: os.stat_result, ctx: Context, ino: int) -> Directory:
    """The file's root group; its identity is the one of the version HDF5 opened."""
    fit(ctx.cache)  # the pool and the chunk offset tables, counted in --cache-size
    with H5_LOCK:
        POOL.forget(path)
        ident = POOL.identity(path)
    return H5Group(H5File(path, ident, ctx), b"/", ino)
