"""Conventions in zarr stores and ripple cubes, through a real mount.

NeXus default plots in a zarr store whose attributes say so (the same rules as for HDF5,
through the store's GroupView), against the link targets the rules give and zarr's data.

Previews of the cubes whose format says what their axes are, against pictures computed
with numpy from the data zarr and ``numpy.fromfile`` read:

* maxrf4u's ``.datastack`` ``maxrf_cube`` (height, width, channels) and a ripple
  ``record-by vector`` cube are XRF cubes: the map of summed counts, even with a channel
  count the shape rule alone would take for a stack (not a power of two, less than four
  times the image side);
* a ripple ``record-by image`` cube (depth, height, width) is a stack: its first frame,
  even with a width the shape rule alone would take for a channel axis (512);
* the real synthetic scan (``synthetic_scan.datastack`` and ``.rpl``) gives its map.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REAL
from tests.mounting import mounted, require_module
from tests.test_png_mount import expected_grey
from vfs.render.png import is_cube

pytestmark = pytest.mark.mount

SYNTHETIC = REAL.parent / "synthetic" / "maxrf"


def picture(path: Path) -> np.ndarray:
    img = Image.open(io.BytesIO(path.read_bytes()))
    assert img.format == "PNG" and img.mode == "L"
    return np.asarray(img)


def write_rpl(folder: Path, name: str, data: np.ndarray, record_by: str) -> None:
    if record_by == "vector":
        height, width, depth = data.shape
    else:
        depth, height, width = data.shape
    header = (f"key\tvalue\nwidth\t{width}\nheight\t{height}\ndepth\t{depth}\noffset\t0\n"
              f"data-length\t{data.dtype.itemsize}\ndata-type\tunsigned\nbyte-order\tlittle-endian\n"
              f"record-by\t{record_by}\n")
    (folder / f"{name}.rpl").write_text(header)
    data.astype("<u2").tofile(folder / f"{name}.raw")


@pytest.fixture(scope="module")
def cubes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    zarr = require_module("zarr")
    src = tmp_path_factory.mktemp("cubes") / "src"
    src.mkdir()
    rng = np.random.default_rng(11)
    cube = rng.poisson(3.0, (60, 50, 200)).astype(np.float32)
    cube[20:30, 5:9, 40:60] += 40.0  # a bright patch in the map
    assert not is_cube(cube.shape, {})  # the shape rule alone would draw frame 0
    with zarr.storage.ZipStore(str(src / "scan.datastack"), mode="w") as store:
        root = zarr.group(store=store, zarr_format=3)
        arr = root.create_array("maxrf_cube", shape=cube.shape, chunks=(16, 16, 64), dtype="float32")
        arr[...] = cube
        other = root.create_array("other_cube", shape=cube.shape, chunks=(16, 16, 64), dtype="float32")
        other[...] = cube
    vector = rng.poisson(2.0, (40, 30, 300)).astype(np.uint16)
    vector[3:9, 20:25, :] += 7
    write_rpl(src, "vector", vector, "vector")
    frames = rng.integers(0, 1000, (3, 40, 512)).astype(np.uint16)
    assert is_cube(frames.shape, {})  # the shape rule alone would sum it
    write_rpl(src, "frames", frames, "image")
    with zarr.storage.ZipStore(str(src / "scan.datastack"), mode="r") as store:
        stored = np.asarray(zarr.open_group(store=store, mode="r")["maxrf_cube"][...])
    read_back = {
        "vector": np.fromfile(src / "vector.raw", "<u2").reshape(vector.shape),
        "frames": np.fromfile(src / "frames.raw", "<u2").reshape(frames.shape),
    }
    return src, {"datastack": stored, **read_back}


def test_format_cubes_give_the_summed_map_and_stacks_the_first_frame(cubes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src, data = cubes
    with mounted(src, tmp_path / "mnt") as mnt:
        got = picture(mnt / "scan.datastack" / "maxrf_cube.png")
        np.testing.assert_array_equal(got, expected_grey(data["datastack"].sum(axis=2, dtype=np.float64)))
        # the same array under another name has no format meaning: the shape rule (frame 0)
        other = picture(mnt / "scan.datastack" / "other_cube.png")
        np.testing.assert_array_equal(other, expected_grey(data["datastack"][0].astype(np.float64)))
        got = picture(mnt / "vector.rpl" / "data.png")
        np.testing.assert_array_equal(got, expected_grey(data["vector"].sum(axis=2, dtype=np.float64)))
        got = picture(mnt / "frames.rpl" / "data.png")
        np.testing.assert_array_equal(got, expected_grey(data["frames"][0].astype(np.float64)))
        for path in ("scan.datastack/maxrf_cube.png", "vector.rpl/data.png", "frames.rpl/data.png"):
            assert (mnt / path).stat().st_size == len((mnt / path).read_bytes())
        assert sorted(os.listdir(mnt / "vector.rpl")) == ["data.edf", "data.npy", "data.png", "data.txt",
                                                           "header.txt"]
        assert sorted(os.listdir(mnt / "scan.datastack")) == sorted(
            f"{stem}.{suffix}" for stem in ("maxrf_cube", "other_cube") for suffix in ("edf", "npy", "png", "txt"))


def test_real_synthetic_scan_maps(tmp_path: Path) -> None:
    zarr = require_module("zarr")
    stack = SYNTHETIC / "synthetic_scan.datastack"
    rpl = SYNTHETIC / "synthetic_scan.rpl"
    if not stack.exists():
        pytest.skip("no synthetic maxrf data")
    with zarr.storage.ZipStore(str(stack), mode="r") as store:
        cube = np.asarray(zarr.open_group(store=store, mode="r")["maxrf_cube"][...])
    raw = np.fromfile(SYNTHETIC / "synthetic_scan.raw", "<u2").reshape(48, 64, 1024)  # its header's layout
    with mounted(SYNTHETIC, tmp_path / "mnt") as mnt:
        got = picture(mnt / stack.name / "maxrf_cube.png")
        np.testing.assert_array_equal(got, expected_grey(cube.sum(axis=2, dtype=np.float64)))
        got = picture(mnt / rpl.name / "data.png")
        np.testing.assert_array_equal(got, expected_grey(raw.sum(axis=2, dtype=np.float64)))


def test_nexus_default_plot_in_a_zarr_store(tmp_path: Path) -> None:
    """A store written as NeXus (``default`` -> NXentry -> NXdata with ``signal`` and
    ``axes``): ``default`` at the top, ``signal.*`` and ``axis_0.*`` in the NXdata folder,
    and ``plot.png`` for its 1-D signal, as for an HDF5 file."""
    zarr = require_module("zarr")
    src = tmp_path / "src"
    src.mkdir()
    x = np.linspace(5.0, 9.0, 50)
    counts = np.exp(-((x - 7.0) ** 2)) * 1000.0
    root = zarr.open_group(str(src / "scan.zarr"), mode="w", zarr_format=3, attributes={"default": "entry"})
    entry = root.create_group("entry", attributes={"NX_class": "NXentry", "default": "plotme"})
    data = entry.create_group("plotme", attributes={"NX_class": "NXdata", "signal": "counts", "axes": ["energy"]})
    data.create_array("counts", shape=counts.shape, dtype="float64")[...] = counts
    data.create_array("energy", shape=x.shape, dtype="float64")[...] = x
    entry.create_group("other", attributes={"NX_class": "NXdata", "signal": "nothing"})
    with mounted(src, tmp_path / "mnt") as mnt:
        top = mnt / "scan.zarr"
        assert os.readlink(top / "default") == "entry/plotme"
        here = top / "entry" / "plotme"
        assert sorted(os.listdir(here)) == [
            ".attrs.txt", "axis_0.npy", "axis_0.txt", "counts.npy", "counts.txt", "energy.npy", "energy.txt",
            "plot.png", "signal.npy", "signal.txt"]
        assert os.readlink(here / "signal.npy") == "counts.npy"
        assert os.readlink(here / "axis_0.npy") == "energy.npy"
        np.testing.assert_array_equal(np.load(top / "default" / "signal.npy"), counts)
        np.testing.assert_array_equal(np.load(here / "axis_0.npy"), x)
        plot = Image.open(io.BytesIO((here / "plot.png").read_bytes()))
        assert plot.format == "PNG"
