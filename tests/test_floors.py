"""The two behaviours the dependency floors in pyproject.toml exist for, checked on the
installed versions (so a CI run proves them, rather than a comment claiming them)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest


def test_numpy_fromstring_raises_on_a_bad_token():
    """The SPEC parser skips a data line when numpy refuses it (numpy >= 2.3)."""
    with pytest.raises(ValueError):
        np.fromstring("1 2 x", dtype=np.float64, sep=" ")  # noqa: NPY201 (text mode)


def test_chunk_iter_offsets_count_the_user_block(tmp_path: Path):
    """Raw chunk reads use chunk_iter's offsets as file offsets (HDF5 >= 1.14.4)."""
    data = np.arange(4 * 4096, dtype="<i4").reshape(4, 4096)
    path = tmp_path / "ub.h5"
    with h5py.File(path, "w", userblock_size=1024) as f:
        f.create_dataset("d", data=data, chunks=(1, 4096))
    raw = path.read_bytes()
    with h5py.File(path, "r") as f:
        seen: list[tuple[int, int]] = []
        f["d"].id.chunk_iter(lambda info: seen.append((info.chunk_offset[0], info.byte_offset)))
    assert len(seen) == 4
    for row, offset in seen:
        chunk = np.frombuffer(raw[offset : offset + 4096 * 4], "<i4")
        np.testing.assert_array_equal(chunk, data[row])
