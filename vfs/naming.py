"""One rule for turning a name a file declares into a name in the mount, for every backend.

SPEC labels and motor names, EDF/fabio header keys and HDF5 link names may hold bytes
a file name cannot: ``/`` (a path separator) and NUL (the end of a C string). Both
become ``%``, silx's rule for ``/`` in SPEC labels (``silx.io.spech5``), so a path in
the mount is the path a silx user knows, and NUL is shown rather than silently dropped.
A name is cut to fit Linux's ``NAME_MAX`` (:data:`vfs.limits.MAX_NAME` bytes, UTF-8)
together with the longest suffix a backend appends to it (see :data:`SUFFIX_ROOM`); the
cut never splits a character. An empty name gets the backend's fallback.

Two names that become equal after the mapping are kept apart by
:meth:`vfs.nodes.Entries.add` (``~2`` before the extension).
"""

from __future__ import annotations

from vfs.limits import MAX_NAME

#: bytes kept free after a stem: ``.<stem>.attrs.txt`` adds 11, a clash ``~NNN`` 4 more
SUFFIX_ROOM = 16
#: the longest stem, in bytes of UTF-8
MAX_STEM = MAX_NAME - SUFFIX_ROOM


def safe_name(name: str, fallback: str = "_") -> str:
    """``name`` as one path component: ``/`` and NUL -> ``%``, at most :data:`MAX_STEM`
    bytes (cut at a character boundary), ``fallback`` when empty."""
    name = name.replace("/", "%").replace("\x00", "%")
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) > MAX_STEM:
        cut = MAX_STEM
        while cut > 0 and raw[cut] & 0xC0 == 0x80:  # do not split a UTF-8 sequence
            cut -= 1
        name = raw[:cut].decode("utf-8", "surrogateescape")
    return name or fallback


def safe_path(path: str) -> str:
    """A ``/``-separated path a file declares (an HDF5 link target) with each component
    mapped by :func:`safe_name`, so that it names what the mount shows."""
    return "/".join(part if part in ("", ".", "..") else safe_name(part) for part in path.split("/"))
