"""What keeps the HDF5 backend inside SOURCE.

* :func:`follow_internal`: find an object through hard and soft links only. h5py would
  follow an external link on the way, opening (and reading) another file, perhaps
  outside SOURCE; the mount shows external links as symlinks instead.
* :class:`OutsideGuard`: run when a dataset's file is opened; refuses (EACCES, logged
  once) a dataset whose bytes would come from outside SOURCE: external raw storage
  (``H5Pset_external``) and virtual-dataset sources, followed through sources that are
  themselves virtual or external (a VDS inside SOURCE whose source has its raw data in
  ``/etc`` is refused too). Names are relative to the naming file's folder, as the
  backend sets ``HDF5_EXTFILE_PREFIX``/``HDF5_VDS_PREFIX`` (see ``formats/__init__``).
  The check runs once per dataset, at first open, so listing never opens other files.
"""

from __future__ import annotations

import os
import posixpath
import threading
from typing import Any

import h5py

from vfs.context import Context
from vfs.errors import OutsideSource
from vfs.formats.h5pool import H5_LOCK, POOL
from vfs.logutil import log_once

#: soft links followed in a row before giving up (a cycle, or a hostile chain)
MAX_SOFT_HOPS = 16
#: virtual/external sources followed in depth (a VDS of VDS of ...)
MAX_SOURCE_DEPTH = 4


def _encode(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _decode(name: bytes | str) -> str:
    return name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name


def follow_internal(f: h5py.File, path: str, hops: int = 0) -> Any:
    """The object at absolute ``path`` reached through hard and soft links only, or None."""
    obj: Any = f["/"]
    where = "/"
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        bpart = _encode(part)
        if not isinstance(obj, h5py.Group) or not obj.id.links.exists(bpart):
            return None
        info = obj.id.links.get_info(bpart)
        if info.type == h5py.h5l.TYPE_EXTERNAL:
            return None
        if info.type == h5py.h5l.TYPE_SOFT:
            if hops >= MAX_SOFT_HOPS:
                return None
            rest = posixpath.join(where, _decode(obj.id.links.get_val(bpart)), *parts[i + 1:])
            return follow_internal(f, posixpath.normpath(rest), hops + 1)
        obj = obj[bpart]
        where = posixpath.join(where, part)
    return obj


def _sources(path: str, ds: h5py.Dataset) -> tuple[list[str], list[tuple[str, str]]]:
    """Files whose raw bytes ``ds`` reads, and the (file, dataset) pairs of its VDS sources."""
    dcpl = ds.id.get_create_plist()
    folder = os.path.dirname(path)
    files = [os.path.join(folder, _decode(dcpl.get_external(i)[0])) for i in range(dcpl.get_external_count())]
    nested = []
    if dcpl.get_layout() == h5py.h5d.VIRTUAL:
        stem = os.path.splitext(os.path.basename(path))[0]
        for i in range(dcpl.get_virtual_count()):
            name = _decode(dcpl.get_virtual_filename(i))
            other = path if name == "." else os.path.join(folder, name.replace("%b", stem).replace("%%", "%"))
            files.append(other)
            nested.append((other, _decode(dcpl.get_virtual_dsetname(i))))
    return files, nested


def outside_sources(path: str, ds: h5py.Dataset, ctx: Context, where: str, depth: int = 0) -> OutsideSource | None:
    """The error to give on reading ``ds`` (of file ``path``) if any of its bytes come
    from outside SOURCE, else None. Call with :data:`H5_LOCK` held."""
    try:
        files, nested = _sources(path, ds)
    except Exception as exc:
        return OutsideSource(f"{where}: external or virtual sources cannot be listed ({exc}); not read")
    for other in files:
        error = ctx.outside(other, where)
        if error is not None:
            return error
    for other, dset in nested:
        if other == path and dset == ds.name:
            continue
        if depth >= MAX_SOURCE_DEPTH:
            return OutsideSource(f"{where}: virtual sources nested deeper than {MAX_SOURCE_DEPTH}; not read")
        try:
            source = follow_internal(POOL.get(other), posixpath.normpath("/" + dset)) if os.path.isfile(other) else None
        except Exception:  # a missing or unreadable source reads as fill value
            source = None
        if isinstance(source, h5py.Dataset):
            error = outside_sources(other, source, ctx, where, depth + 1)
            if error is not None:
                return error
    return None


class OutsideGuard:
    """Called when a dataset's file is opened: raises :class:`OutsideSource` (logged
    once) if the dataset reads bytes outside SOURCE. Checked once, then remembered."""

    def __init__(self, path: str, h5name: bytes, ctx: Context, where: str) -> None:
        self.path = path
        self.h5name = h5name
        self.ctx = ctx
        self.where = where
        self._checked = False
        self._error: OutsideSource | None = None
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            if not self._checked:
                with H5_LOCK:
                    self._error = outside_sources(self.path, POOL.get(self.path)[self.h5name], self.ctx, self.where)
                self._checked = True
        if self._error is not None:
            message = str(self._error.strerror)
            log_once(message, message)
            raise self._error
