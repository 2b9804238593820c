"""Fuzzing through a real mount: hostile SPEC texts, EDF headers (plain, gzip, bzip2
bodies and whole-file compression) and HDF5 files mutated from real ones (truncated at
structure boundaries, bit flips, absurd sizes).

One mount with ``--cache-size 64M`` serves every example; each example is a folder of
generated files walked, listed and read the way users do. Must hold: the mount never
dies, no walk of a file takes over 5 s, good files beside them read their exact values
after every example, and the mount's peak memory stays under 64 MB + 300 MB.
``scripts/fuzz.py`` runs the same with as many examples as asked.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REAL, MountFactory
from tests.fuzzing import boundaries, edf_file, exercise, hdf5_mutant, seed_hdf5, spec_file
from tests.mounting import memory_kib, mount_pid

EXAMPLES = int(os.environ.get("VFS_FUZZ_EXAMPLES", "50"))
BOUND = (64 << 20) + (300 << 20)
REAL_SEEDS = ["float.h5", "array_mdatom.h5", "compound-dtype-complex.h5", "blosc_bigendian.h5", "Data_Q.h5"]
GOOD = np.arange(12, dtype="<u2").reshape(3, 4)


def hdf5_seeds(tmp: Path) -> list[tuple[bytes, list[int]]]:
    """(bytes, structure offsets) of a generated file and of small real ones when present."""
    paths = [tmp / "seed.h5"]
    seed_hdf5(paths[0])
    paths += [REAL / "hdf5" / name for name in REAL_SEEDS if (REAL / "hdf5" / name).is_file()]
    return [(p.read_bytes(), boundaries(p)) for p in paths]


def write_good(src: Path) -> None:
    (src / "good.spec").write_text("#F good.spec\n#S 1 ascan\n#N 2\n#L x  y\n1 2\n3 4\n")
    with h5py.File(src / "good.h5", "w") as f:
        f["data"] = GOOD
    text = b"HeaderID = EH:000001:000000:000000 ;\nImage = 1 ;\nByteOrder = LowByteFirst ;\n" \
           b"DataType = UnsignedShort ;\nDim_1 = 4 ;\nDim_2 = 3 ;\nSize = 24 ;\n"
    (src / "good.edf").write_bytes(b"{\n" + text + b" " * (508 - len(text)) + b"}\n" + GOOD.tobytes())


def good_still_served(mnt: Path) -> bool:
    return (np.load(mnt / "good.spec" / "1.1" / "measurement" / "y.npy").tolist() == [2.0, 4.0]
            and np.array_equal(np.load(mnt / "good.h5" / "data.npy"), GOOD)
            and np.array_equal(np.load(mnt / "good.edf" / "data.npy"), GOOD))


def appear(path: Path, timeout: float = 5.0) -> None:
    """Wait until a new source folder shows in the mount (folders re-list within 0.5 s)."""
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def test_fuzzed_files_never_kill_hang_or_blow_up_the_mount(tmp_path: Path, mount: MountFactory) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_good(src)
    seeds = hdf5_seeds(tmp_path)
    files = st.lists(st.one_of(spec_file().map(lambda b: ("spec", b)), edf_file().map(lambda b: ("edf", b)),
                               hdf5_mutant(seeds).map(lambda b: ("h5", b))), min_size=1, max_size=12)
    counter = itertools.count()
    with mount(src, "--cache-size", "64M", data_limit=2 << 30) as mnt:
        pid = mount_pid(mnt)

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(files)
        def check(batch: list[tuple[str, bytes]]) -> None:
            folder = src / f"ex{next(counter)}"
            folder.mkdir()
            for i, (suffix, data) in enumerate(batch):
                (folder / f"f{i}.{suffix}").write_bytes(data)
            appear(mnt / folder.name)
            for i, (suffix, _) in enumerate(batch):
                problem = exercise(mnt / folder.name / f"f{i}.{suffix}")
                assert problem is None, problem
            assert os.path.ismount(mnt) and good_still_served(mnt)

        check()
        peak = memory_kib(pid) << 10
    assert peak < BOUND, f"peak RSS {peak >> 20} MiB"
