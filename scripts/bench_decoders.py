#!/usr/bin/env python3
"""Which decoder for which HDF5 filter: candidates against h5py on the same chunks.

For each compressed cube of scripts/bench_hdf5.py (generated as there, once, and reused),
the stored chunks are read once into memory (``pread`` at the offsets of the chunk
index), then decoded by each candidate, on one thread and on a pool of one thread per
core; each figure is a ratio to h5py's ``ds[...]`` of the same dataset measured in the
same run (rounds of h5py and every candidate in turn, best of 5 each). Every candidate's output is checked equal to h5py's
chunk before it is timed. Candidates that are not installed are skipped.

    python scripts/bench_decoders.py [--quick] [--data /tmp/vfs-bench-data]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from vfs.decode import Pipeline, filters_of, read_chunk_index  # noqa: E402

GiB = 1 << 30
ROUNDS = 5
DATASET = "entry/cube"


def candidates(layout: str, nbytes: int) -> dict[str, Callable[[bytes], Any]]:
    """name -> function(stored chunk) -> the chunk's bytes, for one layout."""
    out: dict[str, Callable[[bytes], Any]] = {}

    def add(name: str, make: Callable[[], Callable[[bytes], Any]]) -> None:
        try:
            out[name] = make()
        except ImportError:
            pass

    if layout == "gzip":  # deflate then shuffle: only the deflate step differs
        import imagecodecs

        unshuffle = lambda b: np.frombuffer(b, np.uint8).reshape(4, -1).T.copy()  # noqa: E731
        add("imagecodecs.deflate_decode (libdeflate)", lambda: lambda r: unshuffle(imagecodecs.deflate_decode(r, out=nbytes)))
        add("zlib.decompress", lambda: lambda r: unshuffle(zlib.decompress(r)))

        def numcodecs_zlib() -> Callable[[bytes], Any]:
            import numcodecs
            codec = numcodecs.Zlib()
            return lambda r: unshuffle(codec.decode(r))
        add("numcodecs.Zlib", numcodecs_zlib)
    elif layout == "zstd":
        import imagecodecs

        add("imagecodecs.zstd_decode", lambda: lambda r: imagecodecs.zstd_decode(r, out=nbytes))

        def numcodecs_zstd() -> Callable[[bytes], Any]:
            import numcodecs
            codec = numcodecs.Zstd()
            return lambda r: codec.decode(r)
        add("numcodecs.Zstd", numcodecs_zstd)
    elif layout == "blosc":
        import imagecodecs

        add("imagecodecs.blosc_decode", lambda: lambda r: imagecodecs.blosc_decode(r, numthreads=1))

        def numcodecs_blosc() -> Callable[[bytes], Any]:
            import numcodecs
            codec = numcodecs.Blosc()
            return lambda r: codec.decode(r)
        add("numcodecs.Blosc", numcodecs_blosc)

        def blosc2_decompress() -> Callable[[bytes], Any]:
            import blosc2
            return lambda r: blosc2.decompress(r)
        add("blosc2.decompress", blosc2_decompress)
    elif layout == "lz4":
        import imagecodecs

        add("imagecodecs.lz4h5_decode", lambda: lambda r: imagecodecs.lz4h5_decode(r, out=nbytes))
    elif layout == "bslz4":
        import bitshuffle

        def bs(r: bytes) -> Any:
            raw = np.frombuffer(r, np.uint8)
            block = int.from_bytes(r[8:12], "big") // 4
            return bitshuffle.decompress_lz4(raw[12:], (nbytes // 4,), np.dtype(np.uint32), block)
        add("bitshuffle.decompress_lz4", lambda: bs)
    return out


def best(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    import h5py
    import hdf5plugin  # noqa: F401

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the 128 MiB cubes of bench_hdf5.py --quick")
    parser.add_argument("--data", default="/tmp/vfs-bench-data")
    args = parser.parse_args()
    tag = "quick" if args.quick else "full"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_hdf5 import FULL, QUICK, generate

    paths = generate(Path(args.data), tag, (QUICK if args.quick else FULL).shape)  # once; reused after
    workers = max(os.cpu_count() or 2, 2)
    print(f"decoders against h5py ds[...], best of {ROUNDS} interleaved rounds, 1 thread and {workers} threads; "
          f"load average {os.getloadavg()[0]:.1f}")
    with ThreadPoolExecutor(workers) as pool:
        for layout in ("gzip", "bslz4", "lz4", "zstd", "blosc"):
            path = paths[layout]
            with h5py.File(path, "r", locking=False) as f:
                ds = f[DATASET]
                itemsize = ds.dtype.itemsize
                nbytes = int(np.prod(ds.chunks)) * itemsize
                table = read_chunk_index(ds.id, tuple(ds.chunks))
                pipeline = Pipeline.of(filters_of(ds.id.get_create_plist()), itemsize)
                fd = os.open(path, os.O_RDONLY)
                try:
                    stored = [os.pread(fd, size, offset) for offset, size, _ in table.values()]
                finally:
                    os.close(fd)
                total = nbytes * len(stored)
                expected = pipeline.decode(stored[0], nbytes) if pipeline else None
                usable = {}
                for name, fn in candidates(layout, nbytes).items():
                    result = fn(stored[0])
                    got = (np.frombuffer(result, np.uint8) if isinstance(result, (bytes, bytearray))
                           else np.asarray(result).view(np.uint8).reshape(-1))
                    if expected is not None and not np.array_equal(got, expected):
                        print(f"  {name}: differs from the expected chunk, skipped")
                        continue
                    usable[name] = fn
                # rounds: h5py, then every candidate on 1 and on N threads, in turn, so
                # that load from elsewhere hits them alike; the best of each is kept
                h5 = float("inf")
                one = dict.fromkeys(usable, float("inf"))
                many = dict.fromkeys(usable, float("inf"))
                for _ in range(ROUNDS):
                    h5 = min(h5, best(lambda: ds[...], 1))
                    for name, fn in usable.items():
                        one[name] = min(one[name], best(lambda: [fn(r) for r in stored], 1))
                        many[name] = min(many[name], best(lambda: list(pool.map(fn, stored)), 1))
            print(f"{layout}: h5py {total / h5 / GiB:.2f} GiB/s")
            for name in usable:
                print(f"  {name:<40} 1 thread {h5 / one[name]:5.2f}x ({total / one[name] / GiB:.2f} GiB/s)   "
                      f"{workers} threads {h5 / many[name]:5.2f}x ({total / many[name] / GiB:.2f} GiB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
