"""The data table of format backends: name, sniffer, module, install hint.

A backend module is imported only when a file of its kind is first opened. It exposes
``open_folder(path, st, ctx, ino) -> Directory`` and may expose ``probe(path, ctx)``, a
cheap real open run at listing time so that a file that merely looks like data is
shown as a plain file instead of an empty folder.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from vfs.context import Context
from vfs.formats import sniff
from vfs.nodes import Directory


@dataclass(frozen=True)
class Backend:
    name: str
    sniff: Callable[[str, bytes], bool]
    module: str
    install_hint: str
    optional: bool = False

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    def open_folder(self, path: str, st: os.stat_result, ctx: Context, ino: int) -> Directory:
        folder: Directory = self.load().open_folder(path, st, ctx, ino)
        return folder

    def probe(self, path: str, ctx: Context) -> None:
        """Raise if the file cannot be opened as this format."""
        fn = getattr(self.load(), "probe", None)
        if fn is not None:
            fn(path, ctx)


BACKENDS: list[Backend] = [
    Backend("hdf5", sniff.is_hdf5, "vfs.formats.hdf5", "pip install h5py hdf5plugin"),
    Backend("spec", sniff.is_spec, "vfs.formats.spec", "(built in: numpy only)"),
    Backend("edf", sniff.is_edf, "vfs.formats.edf", "pip install fabio"),
    Backend("ripple", sniff.is_ripple, "vfs.formats.ripple", "(built in: numpy only)"),
    Backend("zarr", sniff.is_zarr_zip, "vfs.formats.zarrstore", "pip install zarr numcodecs"),
    Backend("fabio", lambda p, h: False, "vfs.formats.fabio_images", "pip install fabio", optional=True),
]


def backend_for(path: str, ctx: Context) -> Backend | None:
    """The first enabled backend whose sniffer accepts the file, or None."""
    try:
        head = sniff.read_head(path)
    except OSError:
        return None
    for backend in BACKENDS:
        if backend.optional and backend.name not in ctx.formats:
            continue
        if backend.name == "fabio":
            if _fabio_accepts(path, ctx):
                return backend
            continue
        if backend.sniff(path, head):
            return backend
    return None


def folder_backend_for(path: str) -> Backend | None:
    """The backend that shows a source *folder* as data (a zarr store folder), or None."""
    if sniff.is_zarr_folder(path):
        return next(b for b in BACKENDS if b.name == "zarr")
    return None


def _fabio_accepts(path: str, ctx: Context) -> bool:
    fn = getattr(importlib.import_module("vfs.formats.fabio_images"), "accepts", None)
    return bool(fn and fn(path, ctx))
