"""vfs: a read-only FUSE filesystem that shows SPEC, EDF and HDF5/NeXus files as folders.

Datasets appear as virtual ``.npy``, ``.txt`` and ``.edf`` files whose bytes are computed
on demand from only the chunks a read touches. The core (nodes, arrays, renderings,
format backends) never imports the FUSE binding; only :mod:`vfs.mount` does.
"""

__version__ = "0.1.0"
