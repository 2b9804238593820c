"""The small source tree the view tests share: an HDF5 file with short and long arrays,
links (soft, to a parent group, dangling external), a SPEC file with exact values as
written, a plain file and a truncated EDF."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from tests.edf_files import frame_block

SMALL = np.array([0.99, 2.5, 1.595026e-13, -3.0, 1e16, np.nan, 123456.789, 1e-5, -0.0, np.inf])
SPEC = b"""#F run.spec
#E 1700000000
#D Tue Nov 14 22:13:20 2023

#S 1 ascan  th 0 1  2 0.1
#D Tue Nov 14 22:13:20 2023
#N 3
#L th  Monitor  I0
0.99 1.595026e-13 7
2.5 -3.25e+21 8
0.1 1e-05 9
"""



def write_source(src: Path) -> Path:
    rng = np.random.default_rng(3)
    with h5py.File(src / "scan.h5", "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry["title"] = "my scan"
        entry["small"] = SMALL
        entry.create_dataset("image", data=(rng.standard_normal((400, 400)) * 1e3).astype(np.float32),
                             chunks=(50, 400), compression="gzip", shuffle=True)
        entry.create_dataset("counts", data=rng.integers(-5, 10**6, 1000).astype(np.int32))
        entry["link"] = h5py.SoftLink("/entry/small")
        entry["here"] = h5py.SoftLink("/entry")
        entry["ext"] = h5py.ExternalLink("not_there.h5", "/x")
    (src / "run.spec").write_bytes(SPEC)
    (src / "notes.txt").write_bytes(b"plain file\n")
    frame = frame_block(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    (src / "cut.edf").write_bytes(frame[: len(frame) - 3000])  # truncated: data past the end is EIO
    return src


