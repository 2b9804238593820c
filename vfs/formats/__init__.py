"""Format backends: each turns one source file into a folder of nodes."""

import os

# Before HDF5 is loaded by any backend: external raw data (H5Pset_external) and
# virtual-dataset sources are found relative to the file that names them, not to the
# mount process's working directory.
os.environ.setdefault("HDF5_EXTFILE_PREFIX", "${ORIGIN}")
os.environ.setdefault("HDF5_VDS_PREFIX", "${ORIGIN}")
