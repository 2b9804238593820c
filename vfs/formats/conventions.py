"""Conventions that files of any hierarchical backend carry, made visible as extra entries.

A backend (HDF5 today, zarr stores too) describes one of its groups through the small
:class:`GroupView` interface: the group's attributes, its members' names, attributes and
shapes, an :class:`~vfs.arrays.ArraySource` for a member array and a view of a member
group. :func:`add_conventions` then adds, after the group's real children (so a real
child always keeps its name and the additions follow the ``~2`` rule):

* **NeXus default plot**: at the root, ``default`` -> the folder of the default NXdata
  (the ``default`` attribute of the file, then of the entry, followed while they name a
  group; without them the first NXentry's first NXdata). In every NXdata folder,
  ``signal.npy|.txt|.edf|.png`` -> the signal's files (the ``signal`` group attribute,
  else the dataset with ``signal=1``), ``axis_<k>.npy|.txt`` -> the axis of dimension
  ``k`` (the ``axes`` attribute of the group, else of the signal as ``"x:y"``, else
  ``axis=k`` dataset attributes, else ``AXISNAME_indices``), and ``plot.png`` when the
  signal is 1-D.
* **HyperSpy axes**: ``Experiments/<name>/axis-<i>/`` gets ``axis.npy|.txt``:
  ``offset + scale * arange(size)`` (``size`` at most :data:`~vfs.limits.MAX_CHANNELS`),
  or the ``axis`` vector of a non-uniform axis kept as an attribute (kept as a dataset,
  it is already listed as ``axis.npy``).
* **PyMca energy axis**: a group holding ``data`` (spectra on the last axis) and
  ``calibration`` (a, b[, c]) gets ``energy.npy|.txt`` = ``a + b*ch + c*ch**2``, ``ch``
  being the ``channels`` array when it has one value per channel, else ``0..n-1``.

Nothing here reads data while listing except attributes; axis and energy values are
computed when first read.
"""

from __future__ import annotations

import posixpath
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from vfs.arrays import ArraySource
from vfs.cache import ChunkCache
from vfs.errors import Unreadable
from vfs.limits import MAX_CHANNELS, MAX_RANK
from vfs.logutil import log_once
from vfs.nodes import Entries, Symlink, make_ino
from vfs.render.files import RenderedFile, add_array_files
from vfs.render.plot import PlotRendering

#: how many ``default`` attributes are followed before giving up (a loop of links)
MAX_DEFAULT_DEPTH = 8
_HSPY_AXIS = re.compile(r"axis-(\d+)\Z")


class GroupView(Protocol):
    """What :func:`add_conventions` needs to know about one group of a backend."""

    #: the group's path inside its file, ``"/"`` for the root
    path: str

    def attrs(self) -> Mapping[str, Any]: ...

    def members(self) -> list[str]: ...

    def member_attrs(self, name: str) -> Mapping[str, Any]: ...

    def shape(self, name: str) -> tuple[int, ...] | None:
        """The shape of a member array; None for a group or anything else."""

    def array(self, name: str) -> ArraySource | None: ...

    def group(self, name: str) -> GroupView | None: ...

    def groups(self) -> list[str]:
        """The names of the member groups, in order (cheaper than asking each member)."""


def text(value: Any) -> str | None:
    """An attribute as one string (str, bytes, or an array of one of them), else None."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (str, np.str_)):
        return str(value)
    return None


def names(value: Any) -> list[str]:
    """An attribute as a list of strings (a string array, or one string)."""
    if isinstance(value, np.ndarray) and value.size > 1:
        return [t for t in (text(v) for v in value.reshape(-1)) if t is not None]
    one = text(value)
    return [] if one is None else [one]


def nx_class(attrs: Mapping[str, Any]) -> str | None:
    return text(attrs.get("NX_class"))


# -- NeXus ---------------------------------------------------------------------------------
def _follow(root: GroupView, here: list[str], target: str) -> list[str] | None:
    """The path (names from the root) of the group ``target`` names, from ``here``."""
    parts = [] if target.startswith("/") else list(here)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        parts = parts[:-1] if part == ".." else parts + [part]
    return parts if _walk(root, parts) is not None else None


def _walk(root: GroupView, parts: list[str]) -> GroupView | None:
    g: GroupView | None = root
    for part in parts:
        g = g.group(part) if g is not None else None
    return g


def _first_of_class(g: GroupView, cls: str) -> str | None:
    for name in g.groups():
        if nx_class(g.member_attrs(name)) == cls:
            return name
    return None


def default_nxdata(root: GroupView) -> list[str] | None:
    """The path of the default NXdata group by the NeXus rules, or None."""
    path: list[str] = []
    g: GroupView | None = root
    for _ in range(MAX_DEFAULT_DEPTH):
        if g is None:
            return None
        if path and nx_class(g.attrs()) == "NXdata":
            return path
        target = text(g.attrs().get("default"))
        nxt = _follow(root, path, target) if target else None
        if nxt is None:
            child = _first_of_class(g, "NXentry" if not path else "NXdata")
            if child is None:
                return None
            nxt = path + [child]
        path, g = nxt, _walk(root, nxt)
    return None


def signal_name(g: GroupView) -> str | None:
    """The NXdata's signal: its ``signal`` attribute, else a member with ``signal=1``."""
    name = text(g.attrs().get("signal"))
    if name is not None and name in g.members():  # an external link has no shape here
        return name
    for member in g.members():
        if g.shape(member) is None:
            continue
        flag = g.member_attrs(member).get("signal")
        flag = text(flag) if text(flag) is not None else flag
        try:
            if int(str(np.asarray(flag).reshape(-1)[0]).strip()) == 1:
                return member
        except (ValueError, TypeError, IndexError):
            continue
    return None


def axis_names(g: GroupView, signal: str, rank: int) -> dict[int, str]:
    """Dimension -> axis member: from the ``axes`` attribute of the group, else of the signal
    (``"x:y"``), else the oldest form (``axis=k`` on each axis dataset, 0-based as silx
    reads it, ``primary=1`` preferred), else the ``AXISNAME_indices`` attributes."""
    attrs = g.attrs()
    listed = names(attrs["axes"]) if "axes" in attrs else []
    if not listed:
        old = text(g.member_attrs(signal).get("axes"))
        listed = re.split(r"[:,]", old) if old else []
    out: dict[int, str] = {}
    if not listed:  # the oldest form: ``axis=k`` on each axis dataset (``primary=1`` first)
        numbered: list[tuple[int, bool, int, str]] = []
        for member in g.members():
            m_attrs = g.member_attrs(member) if g.shape(member) is not None else {}
            try:
                k = int(np.asarray(m_attrs["axis"]).reshape(-1)[0])
                primary = int(np.asarray(m_attrs.get("primary", 0)).reshape(-1)[0])
            except (KeyError, ValueError, TypeError, IndexError):
                continue
            numbered.append((k, primary != 1, len(numbered), member))
        for k, _, _, member in sorted(numbered):
            if 0 <= k < rank:
                out.setdefault(k, member)
        if out:
            return out
    if listed:
        for k, name in enumerate(listed[:rank]):
            name = name.strip()
            if name not in ("", ".") and g.shape(name) is not None:
                out[k] = name
        return out
    for key, value in attrs.items():
        axis = key[: -len("_indices")] if key.endswith("_indices") else None
        if axis and g.shape(axis) is not None:
            dims = np.asarray(value).reshape(-1)
            if dims.size == 1 and dims.dtype.kind in "iu" and 0 <= int(dims[0]) < rank:
                out.setdefault(int(dims[0]), axis)
    return out


def _links(entries: Entries, ident: tuple[object, ...], mtime_ns: int, stem: str, target: str,
           suffixes: tuple[str, ...]) -> None:
    for suffix in suffixes:
        if f"{target}.{suffix}" in entries:
            entries.add(f"{stem}.{suffix}", Symlink(make_ino(*ident, stem, suffix), mtime_ns, f"{target}.{suffix}"))


def add_nxdata(entries: Entries, g: GroupView, ident: tuple[object, ...], mtime_ns: int,
               cache: ChunkCache | None) -> None:
    signal = signal_name(g)
    if signal is None:
        return
    shape = g.shape(signal)
    _links(entries, ident, mtime_ns, "signal", signal, ("npy", "txt", "edf", "png"))
    axes = axis_names(g, signal, len(shape) if shape is not None else MAX_RANK)
    for k, axis in sorted(axes.items()):
        _links(entries, ident, mtime_ns, f"axis_{k}", axis, ("npy", "txt"))
    if shape is not None and len(shape) == 1 and shape[0] > 0:
        source = g.array(signal)
        if source is not None and source.dtype.kind in "biuf":
            axis_source = g.array(axes[0]) if 0 in axes else None
            title = posixpath.join(g.path, signal)
            entries.add("plot.png", RenderedFile(make_ino(*ident, "plot.png"), mtime_ns,
                                                 PlotRendering(source, axis_source, title, cache)))


# -- computed axes -------------------------------------------------------------------------
class ComputedSource(ArraySource):
    """A 1-D float64 array of known length whose values are computed on first read."""

    def __init__(self, n: int, compute: Callable[[], np.ndarray], label: str) -> None:
        super().__init__((n,), np.dtype(np.float64), (max(n, 1),), label)
        self._compute = compute
        self._values: np.ndarray | None = None
        self._lock = threading.Lock()

    def values(self) -> np.ndarray:
        with self._lock:
            if self._values is None:
                try:
                    values = np.asarray(self._compute(), np.float64).reshape(-1)
                except Unreadable:
                    raise
                except Exception as exc:
                    log_once(f"computed:{self.label}", f"{self.label}: cannot be computed: {exc}")
                    raise Unreadable(f"{self.label}: {exc}") from exc
                if values.shape != self.shape:
                    raise Unreadable(f"{self.label}: {values.size} values, expected {self.shape[0]}")
                self._values = values
            return self._values

    def fill_box(self, start: tuple[int, ...], extent: tuple[int, ...], out: np.ndarray) -> None:
        out[...] = self.values()[start[0] : start[0] + extent[0]]


def energy_values(calibration: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """PyMca's energy scale: ``a + b*ch + c*ch**2`` (``c`` is 0 when only a, b are given)."""
    a, b, c = (list(np.asarray(calibration, np.float64).reshape(-1)[:3]) + [0.0])[:3]
    ch = np.asarray(channels, np.float64)
    return a + b * ch + c * ch * ch


def add_energy(entries: Entries, g: GroupView, ident: tuple[object, ...], mtime_ns: int) -> None:
    data, calib = g.shape("data"), g.shape("calibration")
    if not data or calib is None or int(np.prod(calib)) not in (2, 3):
        return
    n = data[-1]
    channels = "channels" if g.shape("channels") in ((n,),) else None
    calib_source, channel_source = g.array("calibration"), g.array(channels) if channels else None
    if calib_source is None or calib_source.dtype.kind not in "biuf":
        return

    def compute() -> np.ndarray:
        ch = channel_source.read_all() if channel_source is not None else np.arange(n)
        return energy_values(calib_source.read_all(), ch)

    label = f"{g.path}/energy"
    add_array_files(entries, "energy", ComputedSource(n, compute, label), (*ident, "energy"), mtime_ns,
                    suffixes=["npy", "txt"])


def add_hyperspy_axis(entries: Entries, g: GroupView, ident: tuple[object, ...], mtime_ns: int) -> None:
    parts = g.path.strip("/").split("/")
    if len(parts) < 3 or parts[-3] != "Experiments" or not _HSPY_AXIS.match(parts[-1]):
        return
    attrs = g.attrs()
    if g.shape("axis") is not None:  # a stored vector is shown as it is: axis.npy already
        return
    if isinstance(attrs.get("axis"), np.ndarray):  # non-uniform axis kept as an attribute
        vector = np.asarray(attrs["axis"], np.float64).reshape(-1)
        n = len(vector)

        def compute() -> np.ndarray:
            return vector
    else:
        try:
            n = int(np.asarray(attrs["size"]).reshape(-1)[0])
            scale = float(np.asarray(attrs.get("scale", 1.0)).reshape(-1)[0])
            offset = float(np.asarray(attrs.get("offset", 0.0)).reshape(-1)[0])
        except (KeyError, ValueError, TypeError, IndexError):
            return
        if n < 0 or n > MAX_CHANNELS:
            return

        def compute() -> np.ndarray:
            return offset + scale * np.arange(n, dtype=np.float64)
    add_array_files(entries, "axis", ComputedSource(n, compute, f"{g.path}/axis"), (*ident, "hspy-axis"),
                    mtime_ns, suffixes=["npy", "txt"])


def add_conventions(entries: Entries, g: GroupView, ident: tuple[object, ...], mtime_ns: int,
                    cache: ChunkCache | None = None) -> None:
    """Add every convention's entries for group ``g`` to its (already filled) ``entries``."""
    try:
        attrs = g.attrs()
        if g.path == "/":
            path = default_nxdata(g)
            if path:
                entries.add("default", Symlink(make_ino(*ident, "nx-default"), mtime_ns, "/".join(path)))
        if nx_class(attrs) == "NXdata":
            add_nxdata(entries, g, ident, mtime_ns, cache)
        add_hyperspy_axis(entries, g, ident, mtime_ns)
        add_energy(entries, g, ident, mtime_ns)
    except Unreadable as exc:
        log_once(f"conventions:{g.path}:{exc}", f"{g.path}: conventions not applied: {exc}")
