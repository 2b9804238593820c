"""The view as an fsspec filesystem, protocol ``vfs``: the mount's tree for xarray, dask,
pandas, zarr and anything else that reads through fsspec, with no FUSE at all.

    >>> import fsspec, numpy as np
    >>> fs = fsspec.filesystem("vfs", fo="/data/run7")
    >>> fs.ls("scan.h5/entry", detail=False)
    ['scan.h5/entry/data', 'scan.h5/entry/title.txt', ...]
    >>> fs.cat_file("scan.h5/entry/title.txt")
    b'my scan\\n'
    >>> with fsspec.open("vfs://scan.h5/entry/data/data.npy", fo="/data/run7") as f:
    ...     cube = np.load(f)

Conventions follow fsspec's archive filesystems (zip, tar): ``fo`` names the source (a
local folder or data file; ``file://`` URLs are accepted), ``root_marker`` is ``""``,
paths are relative to the source and a leading ``/`` or ``vfs://`` is stripped. Bytes
are those a mount serves. Symlinks are followed (``info`` of a link describes its
target, with ``islink`` and ``destination``); a dangling link is of type ``"other"``,
as fsspec's local filesystem reports it. Everything is read-only.
"""

from __future__ import annotations

import os
from typing import Any

from fsspec.spec import AbstractFileSystem

from vfs.errors import ReadOnly
from vfs.nodes import Directory
from vfs.view import Stat, View


class VfsFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """fsspec filesystem over a :class:`vfs.view.View` of ``fo``."""

    protocol = "vfs"
    root_marker = ""

    def __init__(self, fo: str | os.PathLike[str] = "", target_protocol: str | None = None,
                 target_options: dict[str, Any] | None = None, cache_size: int | None = None,
                 formats: str | list[str] = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if target_protocol not in (None, "file", "local"):
            raise ValueError(f"vfs reads local sources only, not {target_protocol}://")
        source = os.fspath(fo)
        if source.startswith("file://"):
            source = source[len("file://"):]
        if not source:
            raise ValueError("vfs needs fo=SOURCE: a local folder or data file")
        names = formats.split(",") if isinstance(formats, str) else formats
        options: dict[str, Any] = {"formats": frozenset(filter(None, names))}
        if cache_size is not None:
            options["cache_size"] = cache_size
        self.fo = source
        self.view = View(source, **options)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("vfs://"):
            path = path[len("vfs://"):]
        return path.strip("/")

    # -- metadata ------------------------------------------------------------------------
    def _entry(self, path: str) -> dict[str, Any]:
        """fsspec's description of one entry (links followed)."""
        link = self.view.stat(self.view.resolve(path, follow=False)[0]) if path else None
        try:
            st = self.view.stat(path, follow_symlinks=True)
        except FileNotFoundError:
            if link is None or link.kind != "link":
                raise
            return {"name": path, "type": "other", "size": link.size, "islink": True,
                    "destination": link.target, "mtime": link.mtime_ns / 1e9, "ino": link.ino}
        out = describe(path, st)
        if link is not None and link.kind == "link":
            out.update(islink=True, destination=link.target)
        return out

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._entry(self._strip_protocol(path))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        _, node = self.view.resolve(path)
        if not isinstance(node, Directory):
            entries = [self._entry(path)]
        else:
            entries = [self._entry(f"{path}/{name}" if path else name) for name in node.children()]
        return entries if detail else [e["name"] for e in entries]

    def walk(self, path: str, maxdepth: int | None = None, topdown: bool = True, on_error: Any = "omit",
             **kwargs: Any) -> Any:
        """As fsspec's walk, but a symlinked folder is listed and not entered (HDF5 links
        to a parent group would otherwise make it endless), as ``os.walk`` does."""
        detail = kwargs.pop("detail", False)
        path = self._strip_protocol(path)
        try:
            listing = self.ls(path, detail=True)
        except OSError as exc:
            if on_error == "raise":
                raise
            if callable(on_error):
                on_error(exc)
            return
        dirs = {e["name"].rsplit("/", 1)[-1]: e for e in listing if e["type"] == "directory"}
        files = {e["name"].rsplit("/", 1)[-1]: e for e in listing if e["type"] != "directory"}
        entry = (path, dirs, files) if detail else (path, list(dirs), list(files))
        if topdown:
            yield entry
        if maxdepth is None or maxdepth > 1:
            for name, info in dirs.items():
                if not info.get("islink"):
                    yield from self.walk(info["name"], None if maxdepth is None else maxdepth - 1, topdown,
                                         on_error, detail=detail, **kwargs)
        if not topdown:
            yield entry

    def modified(self, path: str) -> Any:
        import datetime

        return datetime.datetime.fromtimestamp(self.info(path)["mtime"], tz=datetime.timezone.utc)

    def ukey(self, path: str) -> str:
        info = self.info(path)
        return f"{self.fo}:{info['name']}:{info.get('ino')}:{info.get('mtime')}:{info['size']}"

    # -- data ------------------------------------------------------------------------------
    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if "r" not in mode or any(c in mode for c in "wax+"):
            raise ReadOnly(f"{path}: the vfs view is read-only")
        return self.view.open(self._strip_protocol(path), buffering=block_size or (1 << 20))

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        size = self.view.stat(path, follow_symlinks=True).size
        a = 0 if start is None else (start if start >= 0 else max(size + start, 0))
        b = size if end is None else (end if end >= 0 else max(size + end, 0))
        return self.view.read(path, a, max(min(b, size) - a, 0))

    def readlink(self, path: str) -> str:
        return self.view.readlink(self._strip_protocol(path))

    def getxattr(self, path: str, name: str) -> bytes:
        return self.view.getxattr(self._strip_protocol(path), name)

    def xattrs(self, path: str) -> dict[str, bytes]:
        return self.view.xattrs(self._strip_protocol(path))

    # -- everything that would write ---------------------------------------------------------
    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise ReadOnly("the vfs view is read-only")

    mkdir = makedirs = rm = rm_file = _rm = rmdir = touch = pipe_file = put_file = cp_file = mv = _refuse


def describe(path: str, st: Stat) -> dict[str, Any]:
    """A :class:`Stat` in fsspec's terms."""
    return {"name": path, "type": "directory" if st.kind == "dir" else "file", "size": st.size,
            "mode": st.mode, "mtime": st.mtime_ns / 1e9, "ino": st.ino, "nlink": st.nlink, "islink": False}
