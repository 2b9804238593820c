"""Other fabio formats without a mount: the frames the listing read are the ones reads use."""

from __future__ import annotations

import os
from pathlib import Path

import fabio
import numpy as np
import pytest

from vfs import arrays
from vfs.cache import ChunkCache
from vfs.context import Context
from vfs.formats.fabio_images import FabioModel


def test_frames_read_by_the_listing_are_cache_hits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = np.arange(64 * 48, dtype=np.int32).reshape(64, 48)
    path = tmp_path / "img.cbf"
    fabio.cbfimage.CbfImage(data=data, header={"exposure": "1.0"}).write(str(path))
    ctx = Context(root=str(tmp_path), cache=ChunkCache(1 << 24))
    model = FabioModel(str(path), os.stat(path), ctx)
    assert model.count() == 1  # the listing: reads the frame once, into the cache
    submitted: list[object] = []
    monkeypatch.setattr(arrays._POOL, "submit", lambda *a, **k: submitted.append(a))
    monkeypatch.setattr(model, "load_frame", lambda k: pytest.fail("frame loaded through fabio again"))
    source = model.stack_source()
    assert isinstance(source, arrays.ChunkedSource)
    half = data.size // 2
    first, second = source.read_flat(0, half // 2), source.read_flat(half // 2, half)  # a sequential reader
    assert np.array_equal(np.concatenate([first, second]), data.reshape(-1)[:half])
    assert submitted == []  # the prefetch sees the frame is cached
    assert ctx.cache.stats()["chunk_loads"] == {str(path): 1}
