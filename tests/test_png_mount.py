"""PNG previews through a real mount, opened by Pillow and ``file`` and compared with the
picture the documented rule gives (docs/layout.md, "Preview pictures"): every s-th row
and column, s = ceil(max(h, w) / 1024); grey = round(255 (v - p0.5) / (p99.5 - p0.5))
clipped; the first frame of a stack; the summed-counts map of an XRF cube. The budget
rule is checked on a source that counts what it is asked for."""

from __future__ import annotations

import errno
import io
import math
import os
import subprocess
from pathlib import Path

import fabio
import h5py
import numpy as np
import pytest
from PIL import Image

from tests.mounting import mounted, stats
from vfs.arrays import MemorySource
from vfs.render import png

pytestmark = pytest.mark.mount


def picture(path: Path) -> tuple[np.ndarray, dict[str, str]]:
    img = Image.open(io.BytesIO(path.read_bytes()))
    img.load()
    assert img.format == "PNG" and img.mode == "L"
    return np.asarray(img), dict(img.text)  # type: ignore[attr-defined]


def expected_grey(values: np.ndarray) -> np.ndarray:
    v = values.astype(np.float64)
    lo, hi = np.percentile(v, [0.5, 99.5])
    return np.clip(np.floor((v - lo) * (255.0 / (hi - lo)) + 0.5), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    src = tmp_path_factory.mktemp("png") / "src"
    src.mkdir()
    rng = np.random.default_rng(5)
    gradient = np.add.outer(np.arange(2000.0) * 0.5, np.arange(3000.0)).astype(np.float32)
    stack = rng.integers(0, 100, (4, 90, 120)).astype(np.uint16)
    stack[0, 10, 20] = 60000  # brightest pixel of the first frame
    stack[1, 70, 70] = 65000  # brighter, but in the second frame
    cube = rng.poisson(2.0, (40, 50, 1024)).astype(np.uint32)
    cube[33, 7, 200:260] += 500  # one pixel with many counts, spread over 60 channels
    with h5py.File(src / "img.h5", "w") as f:
        f["gradient"] = gradient
        f.create_dataset("stack", data=stack, chunks=(1, 45, 60), compression="gzip")
        f["cube"] = cube
        f["line"] = np.arange(10.0)
        f["flat"] = np.full((20, 30), 7, np.int16)
        f["text"] = np.array([[b"ab", b"cd"]] * 3)
    frames = rng.integers(0, 1000, (2, 64, 80)).astype(np.int32)
    frames[0, 5, 6] = 99999
    img = fabio.edfimage.EdfImage(data=frames[0])
    img.append_frame(data=frames[1])
    img.write(str(src / "two.edf"))
    mnt = src.parent / "m"
    with mounted(src, mnt) as m:
        yield m, {"gradient": gradient, "stack": stack, "cube": cube, "frames": frames}


def test_which_arrays_get_a_preview(images):
    mnt, _ = images
    names = set(os.listdir(mnt / "img.h5"))
    assert {"gradient.png", "stack.png", "cube.png", "flat.png"} <= names
    assert "line.png" not in names and "text.png" not in names  # 1-D; not numeric
    assert {"0000.png", "0001.png"} <= set(os.listdir(mnt / "two.edf/frames"))


def test_gradient_picture_by_the_documented_rule(images):
    mnt, arrays = images
    path = mnt / "img.h5/gradient.png"
    before = stats(mnt)["chunk_loads"]
    size = os.stat(path).st_size  # the size is known without drawing
    assert stats(mnt)["chunk_loads"] == before
    px, text = picture(path)
    assert len(path.read_bytes()) == size
    s = math.ceil(3000 / 1024)
    assert px.shape == (math.ceil(2000 / s), math.ceil(3000 / s)) == (667, 1000)
    assert px.min() == 0 and px.max() == 255
    assert np.array_equal(px, expected_grey(arrays["gradient"][::s, ::s]))
    assert "every 3th row and column" in text["Description"]
    out = subprocess.run(["file", "-b", str(path)], capture_output=True, text=True, check=True).stdout
    assert out.startswith("PNG image data, 1000 x 667, 8-bit grayscale")


def test_stack_shows_its_first_frame(images):
    mnt, arrays = images
    px, text = picture(mnt / "img.h5/stack.png")
    assert px.shape == (90, 120)
    assert px[10, 20] == 255 and px[70, 70] < 255
    assert np.array_equal(px, expected_grey(arrays["stack"][0]))
    assert "first frame" in text["Description"]


def test_cube_shows_summed_counts(images):
    mnt, arrays = images
    px, text = picture(mnt / "img.h5/cube.png")
    assert px.shape == (40, 50)
    assert px[33, 7] == 255
    assert np.array_equal(px, expected_grey(arrays["cube"].sum(axis=2)))
    assert "summed counts over all 1024 channels" in text["Description"]


def test_constant_image_and_edf_frame(images):
    mnt, arrays = images
    flat, _ = picture(mnt / "img.h5/flat.png")
    assert flat.shape == (20, 30) and not flat.any()  # hi == lo: nothing above lo
    frame, _ = picture(mnt / "two.edf/frames/0000.png")
    assert np.array_equal(frame, expected_grey(arrays["frames"][0]))


def test_preview_is_drawn_once_and_cached(images):
    mnt, _ = images
    path = mnt / "img.h5/stack.png"
    path.read_bytes()
    loads = stats(mnt)["chunk_loads"]
    with open(path, "rb", buffering=0) as f:  # a fresh open, reads in small pieces
        while f.read(4096):
            pass
    assert stats(mnt)["chunk_loads"] == loads
    assert [k for k in loads if k.endswith("(preview)")]


class Counting(MemorySource):
    """A source that counts the elements it is asked for."""

    asked = 0

    def fill_box(self, start, extent, out):
        Counting.asked += int(np.prod(extent))
        super().fill_box(start, extent, out)


def test_budget_limits_what_a_cube_preview_reads():
    cube = np.ones((120, 100, 512), np.float32)
    cube[60:66, 40:46, 300:310] = 1000  # bright block around channel 305
    budget = 2 << 20  # the whole cube is 24 MB
    Counting.asked = 0
    values, what = png.draw(Counting(cube, "c"), budget)
    assert Counting.asked * 4 <= budget
    p = png.plan(cube.shape, 4, True, budget)
    assert p.mode == "coarse" and values.shape == (p.height, p.width)
    assert "around the brightest channel 30" in what  # 300..309
    r, c = np.unravel_index(np.argmax(values), values.shape)
    assert 60 <= r * p.step < 66 and 40 <= c * p.step < 46


def test_budget_limits_what_a_frame_preview_reads():
    frame = np.arange(3000 * 2500, dtype=np.float64).reshape(3000, 2500)
    budget = 8 << 20  # 60 MB frame
    Counting.asked = 0
    values, what = png.draw(Counting(frame, "f"), budget)
    assert Counting.asked * 8 <= budget
    p = png.plan(frame.shape, 8, False, budget)
    assert values.shape == (p.height, p.width) and p.step > math.ceil(3000 / 1024)
    assert np.array_equal(values, frame[:: p.step, :: p.step])
    assert f"every {p.step}th row" in what


def test_unreadable_data_gives_eio_for_its_preview(tmp_path, mount):
    src = tmp_path / "src"
    src.mkdir()
    with h5py.File(src / "ext.h5", "w") as f:
        f.create_dataset("gone", shape=(10, 10), dtype="<f8", external=[("gone.bin", 0, 800)])
    with mount(src) as mnt:
        assert os.stat(mnt / "ext.h5/gone.png").st_size == png.png_size(10, 10)
        with pytest.raises(OSError) as err:
            (mnt / "ext.h5/gone.png").read_bytes()
        assert err.value.errno == errno.EIO
        assert os.listdir(mnt / "ext.h5")  # the mount stays up
