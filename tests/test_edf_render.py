"""``.edf`` renderings read back by fabio and by PyMca's EdfFile: equal data, header
keys kept. PyMca checks are skipped when PyMca5 is not installed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fabio
import numpy as np
import pytest

from tests.edf_files import CANONICAL, frame_block, sample, write_edf
from vfs.arrays import ArraySource, MemorySource
from vfs.context import Context
from vfs.formats.edf import EdfModel
from vfs.formats.imagetree import kept_keys
from vfs.formats.imagetree import ImageFolder
from vfs.nodes import walk
from vfs.render.edf import EdfRendering, FramewiseEdfRendering

try:
    from PyMca5.PyMcaIO import EdfFile
except ImportError:  # optional: only this check is skipped
    EdfFile = None

TYPES = [code for code in CANONICAL if code != "f16"]  # no EDF reader but fabio knows float128
KEYS = {"Exposure time": "0.5", "motor_mne": "samx samy", "motor_pos": "1.5 -2", "note": "a = b # c",
        "long": " ".join(str(i) for i in range(600))}


def render(rendering: Any, path: Path) -> Path:
    size = rendering.size
    parts, offset = [], 0
    while offset < size:  # odd read sizes, as a reader would do
        parts.append(rendering.read(offset, 70001))
        offset += 70001
    path.write_bytes(b"".join(parts))
    assert path.stat().st_size == size
    return path


def read_back(path: Path) -> Iterator[tuple[str, list[np.ndarray], list[dict[str, str]]]]:
    """(reader, frames, headers) from fabio and, when installed, PyMca."""
    with fabio.open(str(path)) as img:
        frames = [img] if img.nframes == 1 else [img.getframe(k) for k in range(img.nframes)]
        yield "fabio", [np.array(f.data) for f in frames], [dict(f.header) for f in frames]
    if EdfFile is not None:
        edf = EdfFile.EdfFile(str(path), "rb")
        n = edf.GetNumImages()
        yield "pymca", [edf.GetData(k) for k in range(n)], [edf.GetHeader(k) for k in range(n)]


def model_of(path: Path) -> EdfModel:
    return EdfModel(str(path), os.stat(path), Context(root=str(path.parent)))


@pytest.mark.parametrize("big", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("code", TYPES)
def test_frames_and_stack_read_back(tmp_path: Path, code: str, big: bool) -> None:
    data = sample((3, 6, 5), code)
    frames = [frame_block(d, {**KEYS, "index": k}, big_endian=big, image=k + 1) for k, d in enumerate(data)]
    model = model_of(write_edf(tmp_path / "src.edf", frames))
    stack = model.stack_source()
    assert isinstance(stack, ArraySource)
    out = render(FramewiseEdfRendering(stack, lambda k: kept_keys(model.header(k))), tmp_path / "stack.edf")
    for reader, got, headers in read_back(out):
        assert len(got) == 3, reader
        for k in range(3):
            assert np.array_equal(got[k], data[k]), reader
            assert got[k].dtype.newbyteorder("=") == data.dtype, reader
            for key, value in kept_keys(model.header(k)).items():
                assert headers[k][key] == value, (reader, key)
    source = model.frame_source(1)
    assert isinstance(source, ArraySource)
    out = render(FramewiseEdfRendering(source, lambda _: kept_keys(model.header(1))), tmp_path / "one.edf")
    for reader, got, headers in read_back(out):
        assert len(got) == 1 and np.array_equal(got[0], data[1]), reader
        assert headers[0]["index"] == "1" and headers[0]["long"] == KEYS["long"], reader


def test_dim3_frame_renders_as_frames(tmp_path: Path) -> None:
    data = sample((2, 3, 4, 5), "i4")
    model = model_of(write_edf(tmp_path / "d3.edf", [frame_block(d, {"k": k}, image=k + 1) for k, d in enumerate(data)]))
    stack = model.stack_source()
    assert isinstance(stack, ArraySource) and stack.shape == (2, 3, 4, 5)
    per = 3
    out = render(FramewiseEdfRendering(stack, lambda i: kept_keys(model.header(i // per))), tmp_path / "o.edf")
    for reader, got, headers in read_back(out):
        assert np.array_equal(np.stack(got), data.reshape(6, 4, 5)), reader
        assert [h["k"] for h in headers] == ["0", "0", "0", "1", "1", "1"], reader


def test_generic_rendering_guards_layout_keys(tmp_path: Path) -> None:
    """Attributes named like layout keys must not change how readers see the data."""
    attrs = {"EDF_BinaryFileName": "elsewhere.bin", "EDF_DataFormatVersion": "2.4", "Dim_4": "7", "Size": "1",
             "HeaderID": "x", "units": "counts", "long": "x" * 2000}
    data = sample((4, 3, 2), "u2")
    out = render(EdfRendering(MemorySource(data, "m", attrs)), tmp_path / "attrs.edf")
    for reader, got, headers in read_back(out):
        assert np.array_equal(np.stack(got), data), reader
        assert headers[0]["units"] == "counts" and headers[0]["h5_EDF_BinaryFileName"] == "elsewhere.bin", reader
        assert headers[0]["h5_Dim_4"] == "7" and len(headers[0]["long"]) == 1000, reader


def test_frame_npy_reads_share_the_source_buffer(tmp_path: Path) -> None:
    """A frame's ``.npy`` body comes back as a view of the data read (no bytes copy),
    as an HDF5 dataset's does, and equals numpy's own file."""
    frames = [sample((64, 32), "<u2", seed=k) for k in range(3)]
    path = write_edf(tmp_path / "s.edf", [frame_block(f, {"k": k}, image=k + 1) for k, f in enumerate(frames)])
    folder = ImageFolder(model_of(path), 7)
    node = walk(folder, ["frames", "0001.npy"])
    body = node.read_buffer(128, 64 * 32 * 2)  # type: ignore[attr-defined]
    assert isinstance(body, np.ndarray) and body.dtype == np.uint8
    saved = tmp_path / "f.npy"
    np.save(saved, frames[1])
    assert node.read(0, node.size) == saved.read_bytes()  # type: ignore[attr-defined]
