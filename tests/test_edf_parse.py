"""The EDF header index and frame reads, without a mount: every DataType and byte
order, header shapes, odd keys, Dim_3, mixed frames, in-header and whole-file
compression, truncation, and byte counts proving that frame k reads frame k only."""

from __future__ import annotations

import os
from pathlib import Path

import fabio
import numpy as np
import pytest

from tests.edf_files import TYPE_NAMES, frame_block, general_block, sample, write_edf
from vfs.cache import ChunkCache
from vfs.context import Context
from vfs.errors import Unreadable
from vfs.formats import sniff
from vfs.formats.edf import EdfModel, probe
from vfs.formats.edfparse import WINDOW, EdfFormatError, parse_keys
from vfs.formats.edfstream import CompressedStream


def model_of(path: Path, cache: ChunkCache | None = None) -> EdfModel:
    ctx = Context(root=str(path.parent), cache=cache or ChunkCache())
    return EdfModel(str(path), os.stat(path), ctx)


def fabio_frames(path: Path) -> list[tuple[np.ndarray, dict[str, str]]]:
    with fabio.open(str(path)) as img:
        frames = [img] if img.nframes == 1 else [img.getframe(k) for k in range(img.nframes)]
        return [(np.array(f.data), dict(f.header)) for f in frames]


def assert_same(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Equal shape, type (byte order aside) and bits."""
    assert ours.shape == theirs.shape
    assert ours.dtype.newbyteorder("=") == theirs.dtype.newbyteorder("=")
    native = ours.astype(ours.dtype.newbyteorder("="))
    assert native.tobytes() == np.ascontiguousarray(theirs).astype(native.dtype).tobytes()


def assert_matches_fabio(path: Path) -> EdfModel:
    model = model_of(path)
    expected = fabio_frames(path)
    assert model.count() == len(expected)
    for k, (data, header) in enumerate(expected):
        assert model.header(k) == header
        source = model.frame_source(k)
        assert not isinstance(source, str)
        assert_same(source.read_all(), data)
    return model


@pytest.mark.parametrize("big", [False, True], ids=["LowByteFirst", "HighByteFirst"])
@pytest.mark.parametrize("name", sorted(TYPE_NAMES))
def test_every_type_name_and_byte_order(tmp_path: Path, name: str, big: bool) -> None:
    data = sample((5, 7), TYPE_NAMES[name], seed=len(name))
    path = write_edf(tmp_path / "t.edf", [frame_block(data, type_name=name, big_endian=big)])
    model = assert_matches_fabio(path)
    source = model.frame_source(0)
    assert not isinstance(source, str)
    assert source.dtype.byteorder in ("|", ">" if big else "<")
    assert_same(source.read_all(), data)


@pytest.mark.parametrize("header_size", [512, 1024, 1536, 4096, 9216, 600, 65536])
def test_header_sizes(tmp_path: Path, header_size: int) -> None:
    frames = [frame_block(sample((3, 4), "u2", k), {"n": k}, header_size=header_size, image=k + 1) for k in range(3)]
    model = assert_matches_fabio(write_edf(tmp_path / "h.edf", frames))
    assert [f.data_offset for f in model.index.frames] == [header_size + k * (header_size + 24) for k in range(3)]


def test_odd_keys_and_missing_keys(tmp_path: Path) -> None:
    keys = {"Exposure time": "10.0", "pixel X-size (um)": "55", "motor[1]": "3", "Alpha1/Alpha2 ratio": "2",
            "formula": "a=b+c", "comment": "# not a comment", "dup": "first", "DATE (scan begin)": "Mon Jan 31"}
    block = frame_block(sample((4, 4), "i4"), keys, header_id=False, size_key=False)
    block = block.replace(b"dup = first ;", b"dup = first ;\ndup = second ;")
    model = assert_matches_fabio(write_edf(tmp_path / "odd", [block]))
    header = model.header(0)
    assert header["formula"] == "a=b+c" and header["comment"] == "# not a comment" and header["dup"] == "second"
    assert "HeaderID" not in header and "Size" not in header


def test_missing_byte_order_and_type(tmp_path: Path) -> None:
    """fabio refuses a header without ByteOrder; the mount defaults to LowByteFirst (as
    fabio does for a ByteOrder it does not understand) and to UnsignedShort."""
    data = sample((4, 5), "u2")
    block = frame_block(data, byte_order_key=False).replace(b"DataType = UnsignedShort ;", b"")
    model = model_of(write_edf(tmp_path / "bare.edf", [block]))
    source = model.frame_source(0)
    assert not isinstance(source, str) and source.dtype == np.dtype("<u2")
    assert np.array_equal(source.read_all(), data)


def test_parse_keys_fabio_rules() -> None:
    raw = b"\n a = 1 ;\nb=x=y;\n  spaced key  =  v w ;\nno equals here;\n\x00c\x00 = 2\x00;"
    assert parse_keys(raw) == {"a": "1", "b": "x=y", "spaced key": "v w", "c": "2"}


def test_dim3_and_mixed_frames(tmp_path: Path) -> None:
    frames = [frame_block(sample((2, 3, 4), "f4"), image=1), frame_block(sample((5, 6), "u1"), image=2),
              frame_block(sample((6, 5), "i2"), image=3)]
    model = assert_matches_fabio(write_edf(tmp_path / "mixed.edf", frames))
    assert model.index.frames[0].shape == (2, 3, 4)
    assert model.stack_source() is None


def test_uniform_stack_reads(tmp_path: Path) -> None:
    data = sample((6, 9, 11), "i2")
    model = model_of(write_edf(tmp_path / "s.edf", [frame_block(d, image=k + 1) for k, d in enumerate(data)]))
    stack = model.stack_source()
    assert stack is not None and not isinstance(stack, str) and stack.shape == data.shape
    assert np.array_equal(stack.read_all(), data)
    flat = data.reshape(-1)
    for a, b in [(0, 1), (90, 300), (98, 99), (5, 594), (500, 594)]:
        assert np.array_equal(stack.read_flat(a, b), flat[a:b])
    box = np.empty((2, 3, 4), stack.dtype)
    stack.fill_box((3, 2, 5), (2, 3, 4), box)
    assert np.array_equal(box, data[3:5, 2:5, 5:9])


@pytest.mark.parametrize("compression", ["gzip", "zlib", "bz2"])
def test_in_header_compression(tmp_path: Path, compression: str) -> None:
    frames = [frame_block(sample((20, 30), "u4", k), compression=compression, image=k + 1) for k in range(3)]
    assert_matches_fabio(write_edf(tmp_path / "c.edf", frames))


def test_in_header_compression_without_size(tmp_path: Path) -> None:
    data = [sample((8, 8), "f8", k) for k in range(3)]
    frames = [frame_block(d, compression="gzip", size_key=False, image=k + 1) for k, d in enumerate(data)]
    model = model_of(write_edf(tmp_path / "nosize.edf", frames))
    assert model.count() == 3
    stack = model.stack_source()
    assert stack is not None and not isinstance(stack, str)
    assert np.array_equal(stack.read_all(), np.stack(data))


def test_general_block(tmp_path: Path) -> None:
    frames = [frame_block(sample((3, 3), "u2", k), {"own": k}, image=k + 1) for k in range(2)]
    path = write_edf(tmp_path / "g.edf", frames, general=general_block({"beamline": "ID00", "own": "default"}))
    model = assert_matches_fabio(path)
    assert model.header(1)["beamline"] == "ID00" and model.header(1)["own"] == "1"
    assert model.header_text().count(b"{") == 3


def test_truncated_file_keeps_header(tmp_path: Path) -> None:
    data = sample((100, 100), "u2")
    block = frame_block(data, {"title": "cut"})
    path = tmp_path / "cut.edf"
    path.write_bytes(block[: 512 + 5000])
    probe(str(path), Context(root=str(tmp_path)))
    model = model_of(path)
    assert model.count() == 1 and model.header(0)["title"] == "cut"
    source = model.frame_source(0)
    assert not isinstance(source, str)
    assert source.read_bytes(0, 5000) == data.tobytes()[:5000]
    with pytest.raises(Unreadable):
        source.read_bytes(4000, 6000)
    with pytest.raises(Unreadable):
        source.read_all()


def test_truncated_header_is_not_edf(tmp_path: Path) -> None:
    path = tmp_path / "bad.edf"
    path.write_bytes(frame_block(sample((4, 4), "u2"))[:100])
    with pytest.raises(EdfFormatError):
        probe(str(path), Context(root=str(tmp_path)))


@pytest.mark.parametrize("compress", ["gzip", "bz2"])
def test_whole_file_compressed_decoded_once(tmp_path: Path, compress: str) -> None:
    data = sample((12, 64, 64), "u2")
    path = write_edf(tmp_path / f"w.edf.{'gz' if compress == 'gzip' else 'bz2'}", [frame_block(d, image=k + 1) for k, d in enumerate(data)],
                     compress=compress)
    cache = ChunkCache()
    model = model_of(path, cache)
    stream = model.stream
    assert isinstance(stream, CompressedStream)
    stream.block = 20000  # many blocks, so that the counts mean something
    assert_matches_fabio(path)
    stack = model.stack_source()
    assert stack is not None and not isinstance(stack, str)
    for k in [5, 0, 11, 5, 3]:
        assert np.array_equal(stack.read_all()[k], data[k])
    total = model.index.frames[-1].data_offset + data[0].nbytes
    assert stream.decoded_blocks == -(-total // stream.block)


def test_gzip_random_access_after_eviction(tmp_path: Path) -> None:
    data = sample((40, 32, 32), "f4")
    path = write_edf(tmp_path / "r.edf.gz", [frame_block(d, image=k + 1) for k, d in enumerate(data)],
                     compress="gzip")
    cache = ChunkCache(budget=30000)
    model = model_of(path, cache)
    assert isinstance(model.stream, CompressedStream)
    model.stream.block = 10000
    assert model.count() == 40
    before = model.stream.decoded_blocks
    rng = np.random.default_rng(1)
    for k in rng.integers(0, 40, 15):
        source = model.frame_source(int(k))
        assert not isinstance(source, str)
        assert np.array_equal(source.read_all(), data[k])
    # each frame (4 KiB + header) spans at most 2 blocks of 10 kB: decoded from checkpoints
    assert model.stream.decoded_blocks - before <= 15 * 2


class CountingStream:
    """A stream wrapper that counts the bytes read through it."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.label = "counting"
        self.bytes = 0

    def read(self, offset: int, size: int) -> bytes:
        data: bytes = self.inner.read(offset, size)  # type: ignore[attr-defined]
        self.bytes += len(data)
        return data


def test_20000_frames_reads_touch_one_frame(tmp_path: Path) -> None:
    n = 20000
    data = np.arange(n * 64, dtype=np.uint16).reshape(n, 8, 8)
    path = write_edf(tmp_path / "many.edf", [frame_block(d, {"k": k}, image=k + 1) for k, d in enumerate(data)])
    frame_len = 512 + 128
    model = model_of(path)
    counting = CountingStream(model.stream)
    model.stream = counting
    model.index.stream = counting
    model.index._window.stream = counting
    assert model.index.ensure(100)
    assert counting.bytes <= 1.2 * 102 * frame_len + WINDOW  # the headers up to frame 100, not the rest
    assert model.count() == n
    assert counting.bytes <= 1.2 * os.path.getsize(path) + WINDOW
    stack = model.stack_source()
    assert stack is not None and not isinstance(stack, str) and stack.shape == (n, 8, 8)
    for k in [0, 1, 12345, n - 1]:
        counting.bytes = 0
        assert np.array_equal(stack.read_flat(k * 64, (k + 1) * 64).reshape(8, 8), data[k])
        assert counting.bytes == 128
        counting.bytes = 0
        source = model.frame_source(k)
        assert not isinstance(source, str)
        assert np.array_equal(source.read_all(), data[k]) and counting.bytes == 128
    assert model.header(12345)["k"] == "12345"


def test_sniff(tmp_path: Path) -> None:
    block = frame_block(sample((4, 4), "u2"))
    for name, compress in [("plain", None), ("x.edf.gz", "gzip"), ("x.edf.bz2", "bz2")]:
        path = write_edf(tmp_path / name, [block], compress=compress)
        assert sniff.is_edf(str(path), sniff.read_head(str(path))), name
    adsc = tmp_path / "adsc.img"
    adsc.write_bytes(b"{\nHEADER_BYTES=  512;\nDIM=2;\nBYTE_ORDER=little_endian;\n}\n".ljust(512) + bytes(32))
    assert not sniff.is_edf(str(adsc), sniff.read_head(str(adsc)))
    text = tmp_path / "code.c"
    text.write_bytes(b"{\n  int x = 1;\n}\n")
    assert sniff.is_edf(str(text), sniff.read_head(str(text)))  # looks like EDF: probe refuses it
    with pytest.raises(ValueError):
        probe(str(text), Context(root=str(tmp_path)))


def test_external_binary_file(tmp_path: Path) -> None:
    data = sample((6, 5), "i2")
    (tmp_path / "pixels.bin").write_bytes(b"x" * 16 + data.tobytes())
    keys = {"EDF_BinaryFileName": "/elsewhere/pixels.bin", "EDF_BinaryFilePosition": 16}
    block = frame_block(data, keys, size_key=False).replace(b"Image = 1 ;", b"Image = 1 ;\nEDF_BinarySize = 0 ;")
    block = block[: -data.nbytes]  # the data are in pixels.bin, next to the EDF file
    model = assert_matches_fabio(write_edf(tmp_path / "ext.edf", [block]))
    assert model.index.frames[0].external == (str(tmp_path / "pixels.bin"), 16)
