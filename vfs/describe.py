"""What a path of the view is and where its bytes come from (``vfs info``).

Facts are read from the nodes themselves: the data file a path lies in (the nearest
data-file folder on the way), the array source behind a rendered file (class, file,
object, dtype, shape, chunks; HDF5 filters from the file's creation property list) and
the rendering (``.npy``, short or fixed-width ``.txt``, ``.edf``). Nothing is read but
metadata, except what ``stat`` itself needs.
"""

from __future__ import annotations

import stat as stat_module
import time
from typing import Any

from vfs.arrays import ArraySource, ChunkedSource, MemorySource
from vfs.rawarrays import RawSource
from vfs.lazyarrays import LazySource
from vfs.nodes import BytesFile, Directory, Node, Symlink
from vfs.passthrough import PassthroughFile
from vfs.render.files import RENDERINGS, BrokenFile, RenderedFile
from vfs.render.npy import NpyRendering
from vfs.render.txt import TxtRendering
from vfs.tree import DataFolder, SourceDirectory, StatsFile
from vfs.view import View, split, stat_of

SOURCE_KINDS = {
    RawSource: "uncompressed: read with pread at the offsets the file's metadata gives",
    ChunkedSource: "decoded a chunk at a time, decoded chunks kept in the chunk cache",
    MemorySource: "parsed from the file's text or headers, held in memory",
}


def describe_node(view: View, inner: str, node: Node) -> dict[str, Any]:
    """Facts about ``node`` (at ``inner`` in ``view``), in reading order."""
    st = stat_of(node)
    facts: dict[str, Any] = {
        "kind": {"dir": "folder", "file": "file", "link": "symbolic link"}[st.kind],
        "size": st.size,
        "mode": stat_module.filemode(st.mode),
        "modified": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(st.mtime_ns / 1e9)),
        "inode": st.ino,
    }
    if isinstance(node, Symlink):
        facts["target"] = node.target_at(inner)
        try:
            facts["resolves to"] = view.resolve(inner)[0]
        except OSError:
            facts["resolves to"] = "nothing (dangling)"
    container, below = data_file_of(view, inner)
    if isinstance(node, DataFolder):
        facts.update({"source file": node.path, "format": node.backend.name})
    elif isinstance(node, SourceDirectory):
        facts["source folder"] = node.path
    elif isinstance(node, PassthroughFile):
        facts.update({"source file": node.path, "rendering": "the source file itself"})
    elif container is not None:
        facts.update({"source file": container.path, "format": container.backend.name, "inside": below})
    if isinstance(node, StatsFile):
        facts["rendering"] = "cache counters as JSON, computed when opened"
    elif isinstance(node, BrokenFile):
        facts["problem"] = node.reason
    elif isinstance(node, RenderedFile):
        facts.update(rendering_facts(node.rendering))
    elif isinstance(node, BytesFile):
        facts["rendering"] = "text made from the file's metadata (headers, attributes)"
    names = list(node.xattrs())
    if names:
        facts["xattrs"] = " ".join(names)
    return facts


def data_file_of(view: View, inner: str) -> tuple[DataFolder | None, str]:
    """The data file (its folder node) that ``inner`` lies in, and the path below it."""
    parts = split(inner)
    found: tuple[DataFolder | None, str] = (None, "")
    node: Node = view.root
    for i, part in enumerate(parts):
        if not isinstance(node, Directory):
            break
        node = node.child(part)
        if isinstance(node, DataFolder):
            found = (node, "/".join(parts[i + 1:]))
    return found


def rendering_facts(rendering: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    source: ArraySource | None = getattr(rendering, "source", None)
    if isinstance(rendering, NpyRendering):
        out["rendering"] = f".npy (numpy.save format, {len(rendering.header)}-byte header, then the raw data)"
    elif isinstance(rendering, TxtRendering):
        out["rendering"] = (".txt, shortest exact numbers, one space apart" if rendering.short else
                            f".txt, fixed width: {rendering.width + 1} bytes per value")
    else:
        suffix = next((name for name, cls in RENDERINGS.items() if type(rendering) is cls), None)
        out["rendering"] = f".{suffix}" if suffix else type(rendering).__name__
    if source is None:
        return out
    if isinstance(source, LazySource):  # listed, built now: what reads is the built source
        source = source.source
    path = getattr(source, "path", None)
    label = source.label
    if path and label.startswith(f"{path}:"):
        out["object"] = label[len(path) + 1:]
    else:
        out["object"] = label
    out.update({"dtype": str(source.dtype), "shape": source.shape, "chunks": source.chunks})
    kind = next((text for cls, text in SOURCE_KINDS.items() if isinstance(source, cls)), type(source).__name__)
    out["read"] = kind
    if path and isinstance(getattr(source, "name", None), bytes):
        out["filters"] = hdf5_filters(path, source.name)  # type: ignore[attr-defined]
    return out


def hdf5_filters(path: str, name: bytes) -> str:
    """The filter pipeline of an HDF5 dataset, as HDF5 names it."""
    import h5py

    from vfs.formats.h5pool import H5_LOCK

    try:
        with H5_LOCK, h5py.File(path, "r", locking=False) as f:
            obj = f[name]
            if not isinstance(obj, h5py.Dataset):
                return "-"
            plist = obj.id.get_create_plist()
            names = []
            for i in range(plist.get_nfilters()):
                code, _flags, opts, fname = plist.get_filter(i)
                label = fname.decode(errors="replace") or f"filter {code}"
                names.append(f"{label} (id {code}{', options ' + str(tuple(opts)) if len(opts) else ''})")
            return ", ".join(names) or "none"
    except Exception as exc:  # info is best effort; the reason is shown
        return f"unknown ({type(exc).__name__}: {exc})"
