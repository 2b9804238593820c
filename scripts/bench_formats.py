"""Benchmark of the zarr and ripple backends against zarr-python and numpy.memmap, in one run.

    python scripts/bench_formats.py [--quick] [--size-mb 1024] [--spectra 20] [--workdir DIR]

Writes once into --workdir (default /tmp/vfs-bench-formats, reused while current):

* ``cube.datastack``: a maxrf4u-style zarr v3 ZipStore, ``maxrf_cube`` (h, w, 2048)
  float32 of --size-mb MiB in (32, 32, 512) chunks, zstd (zarr's default), plus the
  ``maxrf_maxspectrum``/``maxrf_sumspectrum`` spectra, written with ``zarr.create_array``
  as maxrf4u does;
* ``cube.rpl`` + ``cube.raw``: a Bruker-style ripple cube (h, w, 2048) uint16,
  record-by vector, of --size-mb MiB.

Then prints, each as a ratio to a baseline measured in the same run (mount / baseline):

* first ``ls -l`` of the mount root (no baseline: this is where both files are
  recognised: the zip's central directory, the ripple header), then
* first listing of a tiny store (the first store listed imports numcodecs: no baseline);
* first listing of ``cube.datastack/`` (``os.listdir`` + ``stat`` of every entry) /
  ``zarr.open_group`` on a ZipStore + the members' shapes;
* first listing of ``cube.rpl/`` / reading the header and ``numpy.memmap`` of the ``.raw``;
* one spectrum (median over --spectra random pixels, each in a chunk not read before,
  the mappings advised ``MADV_RANDOM`` as a spectrum viewer would):
  ``numpy.load(maxrf_cube.npy, mmap_mode="r")[i, j, :]`` / zarr's ``cube[i, j, :]``, and
  ``numpy.load(cube.rpl/data.npy, mmap_mode="r")[i, j, :]`` / ``numpy.memmap[i, j, :]``.

Then a 40 GiB ``big.datastack`` (same metadata, 20,480 chunk members that all hold one
block, so a few MiB on disk): first ``ls -l`` of the mount root (recognising it: its zip
directory) and of ``big.datastack/`` / ``zarr.open_group`` + shapes, and one spectrum.

Source files are in the page cache for both sides (the baselines run first). Timings are
not assertions; compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import mmap
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vfs.harness import mounted  # noqa: E402

CHANNELS = 2048
CHUNKS = (32, 32, 512)


def geometry(size_mb: int, itemsize: int) -> tuple[int, int]:
    pixels = (size_mb << 20) // (CHANNELS * itemsize)
    width = 512 if pixels >= 512 * 32 else 64
    return pixels // width, width


def spectra_block(rows: int, width: int, row0: int) -> np.ndarray:
    """Smooth peaks whose heights vary across the map, whole counts (compresses ~3x)."""
    ch = np.arange(CHANNELS, dtype=np.float32)
    peaks = [np.exp(-0.5 * ((ch - c) / 6.0) ** 2) for c in (300, 700, 1100, 1500)]
    y, x = np.mgrid[row0:row0 + rows, 0:width].astype(np.float32)
    out = np.full((rows, width, CHANNELS), 2.0, np.float32)
    for k, peak in enumerate(peaks):
        amp = 50 * (1 + np.sin(x / (7 + k) + y / (11 + k)))
        out += amp[..., None] * peak
    rng = np.random.default_rng(row0)
    out += rng.integers(0, 4, out.shape, dtype=np.int8)
    return np.floor(out)


def write_files(work: Path, size_mb: int) -> None:
    import zarr

    work.mkdir(parents=True, exist_ok=True)
    stamp = work / f"done-{size_mb}"
    if not (work / "tiny.zarr").exists():
        zarr.create_array(str(work / "tiny.zarr"), shape=(4,), dtype="float32", zarr_format=2)
    if stamp.exists():
        return
    for old in work.glob("cube.*"):
        old.unlink()
    h, w = geometry(size_mb, 4)
    t0 = time.perf_counter()
    with zarr.storage.ZipStore(str(work / "cube.datastack"), mode="w") as store:
        root = zarr.group(store=store, zarr_format=3)
        cube = root.create_array("maxrf_cube", shape=(h, w, CHANNELS), chunks=CHUNKS, dtype="float32")
        total = np.zeros(CHANNELS)
        top = np.zeros(CHANNELS, np.float32)
        for r in range(0, h, CHUNKS[0]):
            block = spectra_block(min(CHUNKS[0], h - r), w, r)
            cube[r:r + block.shape[0]] = block
            total += block.sum(axis=(0, 1))
            top = np.maximum(top, block.max(axis=(0, 1)))
        root.create_array("maxrf_maxspectrum", data=top)
        root.create_array("maxrf_sumspectrum", data=total)
    h2, w2 = geometry(size_mb, 2)
    with open(work / "cube.raw", "wb") as fh:
        for r in range(0, h2, 32):
            fh.write(spectra_block(min(32, h2 - r), w2, r).astype("<u2").tobytes())
    (work / "cube.rpl").write_text(
        f"key\tvalue\nwidth\t{w2}\nheight\t{h2}\ndepth\t{CHANNELS}\noffset\t0\ndata-length\t2\n"
        "data-type\tunsigned\nbyte-order\tlittle-endian\nrecord-by\tvector\n")
    stamp.touch()
    print(f"wrote {work} in {time.perf_counter() - t0:.0f} s")


BIG_SHAPE = (2048, 2560, CHANNELS)  # float32: 40 GiB, 20,480 chunks of (32, 32, 512)


def write_big(work: Path) -> Path:
    """A 40 GiB ``.datastack`` of 20,480 real (zstd) chunk members that all hold the same
    smooth block: a few MiB on disk, the member count and metadata of a real 40 GB scan."""
    import zarr
    import zipfile

    path = work / "big.datastack"
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "tiny.zarr").exists():
        zarr.create_array(str(work / "tiny.zarr"), shape=(4,), dtype="float32", zarr_format=2)
    if path.exists():
        return path
    tmp = work / "big.tmp"
    with zarr.storage.ZipStore(str(tmp), mode="w") as store:
        root = zarr.group(store=store, zarr_format=3)
        cube = root.create_array("maxrf_cube", shape=BIG_SHAPE, chunks=CHUNKS, dtype="float32")
        cube[:CHUNKS[0], :CHUNKS[1], :] = np.broadcast_to(spectra_block(1, 1, 0), (*CHUNKS[:2], CHANNELS))
    with zipfile.ZipFile(tmp) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    chunk = members["maxrf_cube/c/0/0/0"]
    with zipfile.ZipFile(path, "w") as zf:
        for name in ("zarr.json", "maxrf_cube/zarr.json"):
            zf.writestr(name, members[name])
        grid = [n // c for n, c in zip(BIG_SHAPE, CHUNKS)]
        for a in range(grid[0]):
            for b in range(grid[1]):
                for k in range(grid[2]):
                    zf.writestr(f"maxrf_cube/c/{a}/{b}/{k}", chunk)
    tmp.unlink()
    return path


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def listing(folder: Path) -> None:
    for name in os.listdir(folder):
        os.stat(folder / name)


def zarr_listing(path: Path) -> None:
    import zarr

    root = zarr.open_group(zarr.storage.ZipStore(str(path), mode="r"), mode="r")
    [arr.shape for _, arr in root.arrays()]


def memmap_listing(rpl: Path, shape: tuple[int, ...]) -> None:
    rpl.read_bytes()
    np.memmap(rpl.with_suffix(".raw"), "<u2", "r", 0, shape)


def pixels(shape: tuple[int, ...], n: int, seed: int) -> list[tuple[int, int]]:
    """Random pixels, each in its own chunk row/column block (so no chunk is read twice)."""
    rng = np.random.default_rng(seed)
    blocks = [(a, b) for a in range(shape[0] // CHUNKS[0]) for b in range(shape[1] // CHUNKS[1])]
    picks = rng.permutation(len(blocks))[:n]
    return [(blocks[k][0] * CHUNKS[0] + int(rng.integers(CHUNKS[0])),
             blocks[k][1] * CHUNKS[1] + int(rng.integers(CHUNKS[1]))) for k in picks]


def spectrum_times(get: Callable[[int, int], np.ndarray], where: list[tuple[int, int]]) -> float:
    return statistics.median(timed(lambda i=i, j=j: np.array(get(i, j))) for i, j in where)


def line(what: str, mine: float, base: float, base_name: str) -> None:
    print(f"{what:<38} {mine * 1e3:9.2f} ms  {base_name:<24} {base * 1e3:9.2f} ms  ratio {mine / base:6.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="128 MiB files, 10 spectra")
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--spectra", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vfs-bench-formats"))
    args = parser.parse_args()
    if args.quick:
        args.size_mb, args.spectra = 128, 10
    import zarr

    work = args.workdir / f"{args.size_mb}M"
    write_files(work, args.size_mb)
    ds, rpl = work / "cube.datastack", work / "cube.rpl"
    zcube = zarr.open_group(zarr.storage.ZipStore(str(ds), mode="r"), mode="r")["maxrf_cube"]
    rshape = (*geometry(args.size_mb, 2), CHANNELS)
    print(f"datastack {ds.stat().st_size / 2**20:.0f} MiB on disk, cube {zcube.shape} float32; "
          f"ripple {rpl.with_suffix('.raw').stat().st_size / 2**20:.0f} MiB, cube {rshape} uint16")
    for f in (ds, rpl.with_suffix(".raw")):  # both sides read from the page cache
        f.read_bytes()

    base_list_z = timed(lambda: zarr_listing(ds))
    base_list_r = timed(lambda: memmap_listing(rpl, rshape))
    where_z = pixels(zcube.shape, args.spectra, 1)
    where_r = pixels(rshape, args.spectra, 2)
    base_spec_z = spectrum_times(lambda i, j: zcube[i, j, :], where_z)
    mm = np.memmap(rpl.with_suffix(".raw"), "<u2", "r", 0, rshape)
    mm._mmap.madvise(mmap.MADV_RANDOM)  # type: ignore[attr-defined]
    base_spec_r = spectrum_times(lambda i, j: mm[i, j, :], where_r)

    with mounted(work, args.workdir / "mnt") as mnt:
        list_root = timed(lambda: listing(mnt))  # recognises both files (zip directory, header)
        list_tiny = timed(lambda: listing(mnt / "tiny.zarr"))  # the first store imports numcodecs
        list_z = timed(lambda: listing(mnt / ds.name))
        list_r = timed(lambda: listing(mnt / rpl.name))
        arr_z = np.load(mnt / ds.name / "maxrf_cube.npy", mmap_mode="r")
        arr_r = np.load(mnt / rpl.name / "data.npy", mmap_mode="r")
        for a in (arr_z, arr_r):  # a spectrum reader: no read-ahead of the pixels after it
            a._mmap.madvise(mmap.MADV_RANDOM)  # type: ignore[union-attr]
        spec_z = spectrum_times(lambda i, j: arr_z[i, j, :], where_z)
        spec_r = spectrum_times(lambda i, j: arr_r[i, j, :], where_r)
        i, j = where_z[0]
        assert np.array_equal(arr_z[i, j, :], zcube[i, j, :])
        i, j = where_r[0]
        assert np.array_equal(arr_r[i, j, :], mm[i, j, :])
        del arr_z, arr_r

    print(f"{'first ls -l of the mount root':<38} {list_root * 1e3:9.2f} ms  (recognising cube.datastack and cube.rpl)")
    print(f"{'first listing of a first store':<38} {list_tiny * 1e3:9.2f} ms  (tiny.zarr: imports numcodecs, once)")
    line("first listing of cube.datastack/", list_z, base_list_z, "zarr open + shapes")
    line("first listing of cube.rpl/", list_r, base_list_r, "header + numpy.memmap")
    line("one spectrum, .datastack (median)", spec_z, base_spec_z, "zarr cube[i, j, :]")
    line("one spectrum, .rpl (median)", spec_r, base_spec_r, "numpy.memmap[i, j, :]")

    big = write_big(args.workdir / "big")
    base_big = timed(lambda: zarr_listing(big))
    with mounted(big.parent, args.workdir / "mnt") as mnt:
        big_root = timed(lambda: listing(mnt))
        listing(mnt / "tiny.zarr")  # imports numcodecs
        big_list = timed(lambda: listing(mnt / big.name))
        arr = np.load(mnt / big.name / "maxrf_cube.npy", mmap_mode="r")
        arr._mmap.madvise(mmap.MADV_RANDOM)  # type: ignore[union-attr]
        big_spec = timed(lambda: np.array(arr[1500, 2000, :]))
        del arr
    print(f"40 GiB .datastack ({big.stat().st_size / 2**20:.1f} MiB on disk, 20,480 chunk members):")
    line("  first ls -l of the mount root", big_root, base_big, "zarr open + shapes")
    print("    (the root listing also imports the backends, once per mount)")
    line("  first ls -l of big.datastack/", big_list, base_big, "zarr open + shapes")
    print(f"{'  one spectrum (4 chunks)':<38} {big_spec * 1e3:9.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
