"""Lispix / Bruker ripple cubes: ``NAME.rpl`` (a tab-separated header) with ``NAME.raw``
(the raw binary data) beside it, as a folder ``NAME.rpl/``.

::

    NAME.rpl/                    header keys as xattrs user.<key>
      data.npy data.txt data.edf the cube, shape and dtype from the header (below)
      header.txt                 the .rpl as written
      axes/<name>.npy|.txt       offset + scale * arange(size) per dimension whose
                                 *-scale/-origin/-units/-name keys (or ev-per-chan) exist

The array is what RosettaSciIO's ripple reader returns: ``record-by`` ``vector`` ->
(height, width, depth), ``image`` -> (depth, height, width), ``dont-care`` ->
(height, width); dimensions of size 1 are dropped (its ``squeeze``); ``data-type``
``signed|unsigned|float`` x ``data-length`` bytes, ``byte-order`` ``little-endian``,
``big-endian`` or ``dont-care`` (native), starting ``offset`` bytes into the ``.raw``.
Data are served with ``pread`` from the ``.raw`` (no copy); the ``.raw`` itself stays a
plain file, and a ``.rpl`` without its ``.raw`` (or with a header RosettaSciIO refuses)
stays a plain file too. Every declared size is checked against the ``.raw``'s real size.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from vfs.arrays import MemorySource
from vfs.rawarrays import RawSource
from vfs.context import Context
from vfs.errors import Unreadable
from vfs.formats.imagemeta import header_xattrs
from vfs.formats.sniff import ripple_raw_path as raw_path
from vfs.identity import SourceIdentity
from vfs.limits import MAX_ELEMENTS, MAX_HEADER, check_count, check_shape
from vfs.naming import safe_name
from vfs.nodes import BytesFile, Directory, Entries, Node, make_ino
from vfs.render.files import add_array_files

#: the keys whose value must be one of a few words, as RosettaSciIO checks them
CHOICES = {
    "data-length": ("1", "2", "4", "8"),
    "data-type": ("signed", "unsigned", "float"),
    "byte-order": ("little-endian", "big-endian", "dont-care"),
    "record-by": ("image", "vector", "dont-care"),
}
INT_KEYS = ("width", "height", "depth", "offset")
#: what a 3-D cube's preview shows, by ``record-by``: spectra on the last axis (the
#: summed-counts map) or a stack of images (the first frame)
RECORD_BY = {"vector": "spectrum", "image": "image"}
KINDS = {"signed": "i", "unsigned": "u", "float": "f"}
ORDERS = {"little-endian": "<", "big-endian": ">", "dont-care": "="}


def _inca_lines(text: str) -> list[str]:
    """Oxford INCA writes ``(MLX::key : value)``; RosettaSciIO rewrites it as tab lines."""
    lines = text.splitlines(keepends=True)
    if not lines or "(" not in lines[0]:
        return lines
    out = []
    for line in lines[1:]:
        line = (line.replace("(MLX::", "").replace(" : ", "\t").replace(" :", "\t")
                .replace(" ", "\t").lower().strip().replace(")", "\n"))
        if "record-by" in line:
            for word in CHOICES["record-by"]:
                if word in line:
                    line = f"record-by\t{word}"
        out.append(line)
    return "".join(out).splitlines(keepends=True)


def parse_header(text: str) -> dict[str, str]:
    """The header's ``key -> value`` (values as written), checked as RosettaSciIO checks
    them; raises :class:`Unreadable` for a header it would refuse."""
    info: dict[str, str] = {}
    for line in _inca_lines(text):
        line = line.replace("data-Length", "data-length")
        if line[:2] in ("\n", "\r\n") or not line or line[0] == ";":
            continue
        line = line.strip("\r\n").split(";", 1)[0]
        if "\t" not in line:
            raise Unreadable(f"header line {line[:80]!r} has no tab")
        key, value = (seg.strip() for seg in line.split("\t")[:2])
        if key in CHOICES and value not in CHOICES[key]:
            raise Unreadable(f"{key} = {value!r}, not one of {CHOICES[key]}")
        info[key] = value
    for key in (*INT_KEYS, *CHOICES):
        if key not in info:
            raise Unreadable(f"header has no {key!r}")
    for key in INT_KEYS:
        try:
            int(info[key])
        except ValueError:
            raise Unreadable(f"{key} = {info[key]!r} is not an integer") from None
    if int(info["depth"]) == 1 and info["record-by"] != "dont-care":
        raise Unreadable("depth 1 needs record-by dont-care")
    if info["data-type"] == "float" and int(info["data-length"]) < 4:
        raise Unreadable("a float data-type needs data-length 4 or 8")
    if info["data-length"] == "1" and info["byte-order"] != "dont-care":
        raise Unreadable("data-length 1 needs byte-order dont-care")
    return info


def layout(info: Mapping[str, str]) -> tuple[tuple[int, ...], np.dtype[Any], int, list[str]]:
    """(shape after squeeze, dtype in file byte order, offset, header dimension names)."""
    dims = {k: check_count(k, int(info[k]), MAX_ELEMENTS) for k in ("width", "height", "depth")}
    order = {"vector": ["height", "width", "depth"], "image": ["depth", "height", "width"],
             "dont-care": ["height", "width"]}[info["record-by"]]
    dtype = np.dtype(f"{ORDERS[info['byte-order']]}{KINDS[info['data-type']]}{info['data-length']}")
    kept = [name for name in order if dims[name] != 1]
    return tuple(dims[n] for n in kept), dtype, int(info["offset"]), kept


def read_header(path: str) -> tuple[bytes, dict[str, str]]:
    with open(path, "rb") as fh:
        raw = fh.read(MAX_HEADER + 1)
    if len(raw) > MAX_HEADER:
        raise Unreadable(f"{path}: header larger than {MAX_HEADER} bytes")
    return raw, parse_header(raw.decode("latin-1"))


def checked_layout(path: str, ctx: Context) -> tuple[str, bytes, dict[str, str], tuple[int, ...], np.dtype[Any], int, list[str]]:
    """Header, layout and ``.raw`` path of ``path``; raises when they do not fit the ``.raw``
    (or when the ``.raw`` is a symbolic link leading out of the mounted tree)."""
    raw = raw_path(path)
    if raw is None:
        raise Unreadable(f"{path}: no .raw beside it")
    if not ctx.inside(raw):
        raise Unreadable(f"{raw}: leads out of the mounted folder")
    text, info = read_header(path)
    shape, dtype, offset, names = layout(info)
    size = os.stat(raw).st_size
    check_count("offset", offset, size)
    check_shape(shape, dtype.itemsize, size - offset)
    return raw, text, info, shape, dtype, offset, names


def _axis(info: Mapping[str, str], dim: str, size: int) -> tuple[str, np.ndarray, dict[str, bytes]] | None:
    """The axis file of one header dimension (``None`` when the header says nothing)."""
    keys = {k: info[f"{dim}-{k}"] for k in ("scale", "origin", "units", "name") if f"{dim}-{k}" in info}
    if dim == "depth" and "scale" not in keys and "ev-per-chan" in info:
        keys["scale"] = info["ev-per-chan"]
    if not keys:
        return None
    try:
        scale, origin = float(keys.get("scale", 1)), float(keys.get("origin", 0))
    except ValueError:
        return None
    values = origin + scale * np.arange(size, dtype=np.float64)
    xattrs = {f"user.{k}": v.encode("latin-1") for k, v in keys.items()}
    return safe_name(keys.get("name") or dim, dim), values, xattrs


def probe(path: str, ctx: Context) -> None:
    """Raise unless the header parses and its cube fits in the ``.raw``."""
    checked_layout(path, ctx)


def open_folder(path: str, st: os.stat_result, ctx: Context, ino: int) -> Directory:
    raw, text, info, shape, dtype, offset, names = checked_layout(path, ctx)
    mtime = st.st_mtime_ns
    fid = ("rpl", st.st_dev, st.st_ino)
    label = f"{path} ({os.path.basename(raw)})"
    source = RawSource(raw, shape, dtype, shape, label, lambda index: offset,
                       identity=SourceIdentity.of(os.stat(raw)))  # a replaced .raw: EIO, not other bytes

    def load() -> Mapping[str, Node]:
        entries = Entries()
        add_array_files(entries, "data", source, (*fid, "data"), mtime, cache=ctx.cache,
                        interpretation=RECORD_BY.get(info["record-by"]))
        entries.add("header.txt", BytesFile(make_ino(*fid, "header"), mtime, text))
        axes = [a for a in (_axis(info, dim, n) for dim, n in zip(names, shape)) if a is not None]
        if axes:
            entries.add("axes", Directory(make_ino(*fid, "axes"), mtime, lambda: _axes(axes)))
        return entries

    def _axes(axes: list[tuple[str, np.ndarray, dict[str, bytes]]]) -> Mapping[str, Node]:
        entries = Entries()
        for stem, values, xattrs in axes:
            add_array_files(entries, stem, MemorySource(values, f"{label} axis {stem}"),
                            (*fid, "axis", stem), mtime, lambda x=xattrs: x)  # type: ignore[misc]
        return entries

    return Directory(ino, mtime, load, xattrs=lambda: header_xattrs(info))

