"""zarr stores (v2 ``.zgroup``/``.zarray``/``.zattrs``, v3 ``zarr.json``) as folders: a
store folder (``*.zarr``, ``*.zspy``, any name) or a zip file whose root holds zarr
metadata (``.zip``, ``.zspy``, maxrf4u's ``.datastack``).

::

    scan.datastack/                  the root group (attributes: xattrs, .attrs.txt)
      maxrf_cube.npy .txt .edf       array "maxrf_cube" (.edf for 2-D+ numeric images)
      .maxrf_cube.attrs.txt          its attributes as text (also xattrs on each file)
      maxrf_sumspectrum.npy .txt
      Experiments/                   a sub-group
        markers.txt                  an object (ragged / string) array: one value a line

Arrays are shown exactly as HDF5 datasets are (the same renderings and naming rule). A
store whose root is an array shows it as ``data.*``. Chunks are read one at a time
(:mod:`vfs.formats.zarrkeys`: a zip member by its offset, a folder store's chunk file)
and decoded with numcodecs (:mod:`vfs.formats.zarrmeta`) into the shared chunk cache;
what numcodecs cannot decode here (sharding, unknown codecs) goes through the zarr
library, read-only, still chunk by chunk. Listing reads only metadata. Object arrays
(strings, ragged ``vlen-array``) get ``name.txt`` (whole array, bounded by
``MAX_TEXT``); a ``pickle`` codec is never decoded: EIO.

Conventions (:mod:`vfs.formats.conventions`: HyperSpy axes in ``.zspy`` stores, NeXus
default plots, PyMca energy axes) are added to every group after its own members, as
for HDF5 groups: :class:`ZarrView` presents a group through the same small interface
(``path``, ``attrs()``, ``members()``, ``member_attrs()``, ``shape()``, ``array()``,
``group()``, ``groups()``; attributes as h5py would return them).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from vfs.arrays import ArraySource, ChunkedSource
from vfs.rawarrays import RawSource
from vfs.context import Context
from vfs.errors import Unreadable
from vfs.formats.conventions import add_conventions
from vfs.formats.zarrkeys import FolderKeys, Keys, ZipKeys
from vfs.limits import MAX_CHUNK_BYTES, MAX_TEXT
from vfs.logutil import log_once
from vfs.naming import safe_name
from vfs.nodes import BytesFile, Directory, Entries, Node, make_ino
from vfs.render.files import BrokenFile, add_array_files
from vfs.render.values import attrs_text, value_bytes
from vfs.selection import Index, chunk_slices

if TYPE_CHECKING:  # numcodecs is imported when a store is first listed, not when sniffed
    from vfs.formats.zarrmeta import ArrayMeta

XATTR_PREFIX = "user."
ROOT_ARRAY_NAME = "data"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


class ZarrStore:
    """One store as the mount sees it: its keys, identity, and the zarr library fallback."""

    def __init__(self, path: str, st: os.stat_result, ctx: Context) -> None:
        self.path = path
        self.ctx = ctx
        self.keys: Keys = FolderKeys(path, st) if os.path.isdir(path) else ZipKeys(path, st)
        self.fid = ("zarr", st.st_dev, st.st_ino)
        self.mtime_ns = st.st_mtime_ns
        self._zarr_root: Any = None
        self._lock = threading.Lock()

    def json(self, key: str) -> dict[str, Any] | None:
        raw = self.keys.get(key, MAX_TEXT)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise Unreadable(f"{self.path}: {key}: not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise Unreadable(f"{self.path}: {key}: not a JSON object")
        return value

    def node(self, path: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(``"group"`` or ``"array"``, metadata, attributes) of the node at ``path``."""
        meta = self.json(_join(path, "zarr.json"))
        if meta is not None:
            attrs = meta.get("attributes") or {}
            return ("array" if meta.get("node_type") == "array" else "group"), meta, attrs
        attrs = self.json(_join(path, ".zattrs")) or {}
        meta = self.json(_join(path, ".zarray"))
        if meta is not None:
            return "array", meta, attrs
        meta = self.json(_join(path, ".zgroup"))
        if meta is None:
            raise Unreadable(f"{self.path}: no zarr metadata at {path or '/'}")
        return "group", meta, attrs

    def zarr_array(self, path: str) -> Any:
        """The array at ``path`` opened with the zarr library, read-only (the fallback)."""
        import zarr

        with self._lock:
            if self._zarr_root is None:
                if isinstance(self.keys, ZipKeys):
                    store: Any = zarr.storage.ZipStore(self.path, mode="r")
                else:
                    store = zarr.storage.LocalStore(self.path, read_only=True)
                self._zarr_root = store
        return zarr.open_array(store=self._zarr_root, path=path, mode="r")


class ZarrSource(ChunkedSource):
    """One zarr array, decoded a chunk at a time into the shared cache."""

    def __init__(self, store: ZarrStore, path: str, meta: ArrayMeta, attrs: Mapping[str, Any]) -> None:
        label = f"{store.path}:/{path}"
        super().__init__(meta.shape, meta.dtype, meta.chunks, label, (store.keys.key, path), store.ctx.cache, attrs)
        self.store = store
        self.path = path
        self.meta = meta

    def load_chunk(self, index: Index) -> np.ndarray:
        if self.meta.refused:
            raise Unreadable(f"{self.label}: {self.meta.refused}")
        sel = chunk_slices(index, self.chunks, self.shape)
        if self.meta.decoder is None:
            return np.asarray(self.store.zarr_array(self.path)[sel])
        raw = self.store.keys.get(_join(self.path, self.meta.chunk_key(index)), MAX_CHUNK_BYTES)
        extent = tuple(s.stop - s.start for s in sel)
        if raw is None:  # never written: the fill value
            out = np.empty(extent, self.dtype)
            out[...] = self.meta.fill
            return out
        data = self.meta.decoder(raw)
        return data[tuple(slice(0, e) for e in extent)]


def fallback_meta(store: ZarrStore, path: str) -> ArrayMeta:
    """Shape, dtype and chunks as the zarr library reports them (decoding through it)."""
    from vfs.formats.zarrmeta import ArrayMeta

    arr = store.zarr_array(path)
    dtype = np.dtype(arr.dtype)
    return ArrayMeta(tuple(arr.shape), tuple(arr.chunks), dtype, None, lambda i: "", None)


def object_text(source: ArraySource) -> bytes:
    """An object array as text, one element a line (newlines inside values -> spaces)."""
    if source.size > MAX_TEXT // 2:
        raise Unreadable(f"{source.label}: {source.size} objects, too many to show as text")
    out: list[bytes] = []
    total = 0
    for value in source.read_flat(0, source.size):
        line = value_bytes(value).replace(b"\n", b" ") + b"\n"
        total += len(line)
        if total > MAX_TEXT:
            raise Unreadable(f"{source.label}: text larger than {MAX_TEXT} bytes")
        out.append(line)
    return b"".join(out)


def _attr_bytes(value: Any) -> bytes:
    if isinstance(value, (dict, type(None))) or (isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value)):
        return json.dumps(value).encode()
    return value_bytes(value)


def _attrs_for_text(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _attr_bytes(v).decode("utf-8", "surrogateescape") for k, v in attrs.items()}


class ZarrGroup(Directory):
    """A zarr group as a folder; members are read (metadata only) on first listing."""

    def __init__(self, store: ZarrStore, path: str, ino: int, attrs: Mapping[str, Any]) -> None:
        super().__init__(ino, store.mtime_ns, xattrs=lambda: {XATTR_PREFIX + k: _attr_bytes(v) for k, v in attrs.items()})
        self.store = store
        self.group_path = path
        self.attrs = attrs

    def load(self) -> Mapping[str, Node]:
        entries = Entries()
        fid = self.store.fid
        if self.attrs:
            text = attrs_text(_attrs_for_text(self.attrs))
            entries.add(".attrs.txt", BytesFile(make_ino(*fid, self.group_path, "attrs"), self.store.mtime_ns, text))
        for name in self.store.keys.children(self.group_path):
            path = _join(self.group_path, name)
            try:
                kind, meta, attrs = self.store.node(path)
                if kind == "group":
                    entries.add(safe_name(name), ZarrGroup(self.store, path, make_ino(*fid, path), attrs))
                else:
                    self._add_array(entries, safe_name(name), path, meta, attrs)
            except Exception as exc:
                reason = f"{self.store.path}:/{path}: cannot be opened: {type(exc).__name__}: {exc}"
                log_once(reason, reason)
                entries.add(safe_name(name), BrokenFile(make_ino(*fid, path), self.store.mtime_ns, reason))
        add_conventions(entries, ZarrView.of(self), (*fid, self.group_path, "conv"), self.store.mtime_ns,
                        self.store.ctx.cache)
        return entries

    def _add_array(self, entries: Entries, name: str, path: str, meta_json: dict[str, Any],
                   attrs: Mapping[str, Any]) -> None:
        store, mtime = self.store, self.store.mtime_ns
        ino = make_ino(*store.fid, path)
        xattrs = (lambda: {XATTR_PREFIX + k: _attr_bytes(v) for k, v in attrs.items()}) if attrs else None
        if attrs:
            entries.add(f".{name}.attrs.txt", BytesFile(make_ino(ino, "attrs"), mtime, attrs_text(_attrs_for_text(attrs))))
        source = make_source(store, path, meta_json, attrs)
        if source.dtype.kind == "O":
            entries.add(f"{name}.txt", BytesFile(make_ino(ino, "txt"), mtime, lambda: object_text(source), xattrs))
            return
        add_array_files(entries, name, source, (ino,), mtime, xattrs, cache=store.ctx.cache,
                        interpretation=interpretation(store.path, path))


#: arrays whose axes the format names: maxrf4u's ``.datastack`` holds its XRF cube
#: (height, width, channels) as ``maxrf_cube``
FORMAT_CUBES = {".datastack": "maxrf_cube"}


def interpretation(store_path: str, array_path: str) -> str | None:
    """``spectrum`` for the array a store's format declares an XRF cube (its preview is
    the map of summed counts whatever its shape), else None (attributes and the shape
    rule decide; see :func:`vfs.render.png.is_cube`)."""
    cube = FORMAT_CUBES.get(os.path.splitext(store_path)[1].lower())
    return "spectrum" if cube is not None and array_path == cube else None


def _as_h5_value(value: Any) -> Any:
    """A JSON attribute as h5py would give it: lists of numbers or strings as arrays."""
    if isinstance(value, list) and value and all(isinstance(v, (int, float, str)) for v in value):
        kinds = {type(v) for v in value}
        if str not in kinds or kinds == {str}:
            return np.asarray(value)
    return value


class ZarrView:
    """One zarr group through the small interface the HDF5 tree gives conventions
    (``path``, ``attrs``, ``members``, ``member_attrs``, ``shape``, ``array``, ``group``,
    ``groups``): what a NeXus, HyperSpy or PyMca rule needs, with attributes as h5py
    would return them. Reads metadata only."""

    def __init__(self, store: ZarrStore, group_path: str, attrs: Mapping[str, Any] | None = None) -> None:
        self.store = store
        self.group_path = group_path
        self.path = "/" + group_path
        self._attrs = attrs

    @classmethod
    def of(cls, group: ZarrGroup) -> ZarrView:
        return cls(group.store, group.group_path, group.attrs)

    def _node(self, name: str) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
        try:
            return self.store.node(_join(self.group_path, name))
        except Exception:
            return None

    def attrs(self) -> Mapping[str, Any]:
        if self._attrs is None:
            self._attrs = self.store.node(self.group_path)[2]
        return {k: _as_h5_value(v) for k, v in self._attrs.items()}

    def members(self) -> list[str]:
        return self.store.keys.children(self.group_path)

    def member_attrs(self, name: str) -> Mapping[str, Any]:
        node = self._node(name)
        return {k: _as_h5_value(v) for k, v in node[2].items()} if node else {}

    def shape(self, name: str) -> tuple[int, ...] | None:
        node = self._node(name)
        shape = node[1].get("shape") if node is not None and node[0] == "array" else None
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            return None
        return tuple(shape)

    def array(self, name: str) -> ArraySource | None:
        node = self._node(name)
        if node is None or node[0] != "array":
            return None
        path = _join(self.group_path, name)
        try:
            source = make_source(self.store, path, node[1], node[2])
        except Exception:
            return None
        return source if source.dtype.kind != "O" else None

    def groups(self) -> list[str]:
        return [n for n in self.members() if (node := self._node(n)) is not None and node[0] == "group"]

    def group(self, name: str) -> ZarrView | None:
        node = self._node(name)
        return ZarrView(self.store, _join(self.group_path, name), node[2]) if node and node[0] == "group" else None


def make_source(store: ZarrStore, path: str, meta_json: dict[str, Any], attrs: Mapping[str, Any]) -> ArraySource:
    """The array source of the array at ``path`` from its metadata document: chunks
    without any codec in a zip whose members are all stored are served by ``pread``
    from the zip (:class:`~vfs.arrays.RawSource`, nothing decoded or cached), everything
    else is decoded a chunk at a time (:class:`ZarrSource`)."""
    from vfs.formats.zarrmeta import parse_v2, parse_v3

    meta = parse_v3(meta_json) if meta_json.get("zarr_format") == 3 else parse_v2(meta_json)
    if meta is None:
        return ZarrSource(store, path, fallback_meta(store, path), attrs)
    keys = store.keys
    nbytes = int(np.prod(meta.chunks)) * meta.dtype.itemsize
    if meta.raw and isinstance(keys, ZipKeys) and keys.all_stored(_join(path, ""), nbytes):
        def chunk_offset(index: Index) -> int | None:
            return keys.data_offset(_join(path, meta.chunk_key(index)))
        return RawSource(store.path, meta.shape, meta.dtype, meta.chunks, f"{store.path}:/{path}", chunk_offset,
                         meta.fill, attrs, identity=keys.identity)
    return ZarrSource(store, path, meta, attrs)


class RootArray(Directory):
    """A store whose root is an array: a folder holding that array as ``data.*``."""

    def __init__(self, store: ZarrStore, ino: int) -> None:
        super().__init__(ino, store.mtime_ns)
        self.store = store

    def load(self) -> Mapping[str, Node]:
        entries = Entries()
        _, meta, attrs = self.store.node("")
        ZarrGroup(self.store, "", self.ino, {})._add_array(entries, ROOT_ARRAY_NAME, "", meta, attrs)
        return entries


def probe(path: str, ctx: Context) -> None:
    """Raise unless the store's root metadata can be read."""
    ZarrStore(path, os.stat(path), ctx).node("")


def open_folder(path: str, st: os.stat_result, ctx: Context, ino: int) -> Directory:
    store = ZarrStore(path, st, ctx)
    kind, _, attrs = store.node("")
    if kind == "array":
        return RootArray(store, ino)
    return ZarrGroup(store, "", ino, attrs)
