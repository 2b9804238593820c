"""Exceptions of the core, each tied to the errno the FUSE adapter returns for it.

Every class also inherits the matching builtin (as zarr-python does), so code outside the
adapter can catch ``FileNotFoundError`` and the adapter needs one table, not a chain of
``isinstance`` checks per format.
"""

from __future__ import annotations

import errno


class VfsError(OSError):
    """Base class: an error with a fixed errno that a read or lookup may raise."""

    default_errno = errno.EIO

    def __init__(self, message: str = "") -> None:
        super().__init__(self.default_errno, message or self.__class__.__name__)


class NodeNotFound(VfsError, FileNotFoundError):
    """No entry of that name (ENOENT)."""

    default_errno = errno.ENOENT


class NotADirectory(VfsError, NotADirectoryError):
    """A path component is a file, not a folder (ENOTDIR)."""

    default_errno = errno.ENOTDIR


class IsADirectory(VfsError, IsADirectoryError):
    """A folder was opened as a file (EISDIR)."""

    default_errno = errno.EISDIR


class ReadOnly(VfsError, PermissionError):
    """Any write-like operation: the mount never changes anything (EROFS)."""

    default_errno = errno.EROFS


class NoAttribute(VfsError):
    """Extended attribute not present (ENODATA, which Linux calls ENOATTR)."""

    default_errno = errno.ENODATA


class Unreadable(VfsError):
    """Data that exist in the listing but cannot be served (EIO).

    Raised for a missing HDF5 filter, an unsupported type, a truncated file, a source
    that changed under the mount. The message says which file, which object and why.
    """

    default_errno = errno.EIO


class OutsideSource(VfsError, PermissionError):
    """Data whose bytes lie outside SOURCE (HDF5 external storage, virtual-dataset
    sources, an EDF binary file) and were not allowed with ``--allow-outside`` (EACCES).
    The entry is listed; reading it is refused, logged once."""

    default_errno = errno.EACCES
