"""Generated HDF5 test files: every dtype the mount must render, links of every kind,
awkward names, filters from hdf5plugin, a chunked cube, a user block."""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

NESTED = np.dtype({"names": ["a", "inner", "c"],
                   "formats": ["<i2", np.dtype([("p", ">f4"), ("q", "S3")]), "<f8"],
                   "offsets": [0, 4, 16], "itemsize": 32})
CUBE_SHAPE, CUBE_CHUNKS = (32, 32, 1024), (8, 8, 256)
ODD_NAMES = ["with space", "colon: here", "hash#tag", "<angle>", " leading space", "tab\tname", "ünïcode"]


def write_main(path: Path) -> None:
    rng = np.random.default_rng(42)
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "main test file"
        f.attrs["numbers"] = np.arange(4, dtype=np.int16)
        f.attrs["pi"] = np.float64(np.pi)
        f.attrs["bytes_attr"] = np.bytes_(b"NXroot")
        g = f.create_group("entry")
        g.attrs["NX_class"] = "NXentry"
        types = f.create_group("entry/types")
        for code in ["<i1", "<u1", "<i2", ">i2", "<u2", "<i4", ">i4", "<u4", "<i8", ">u8", "<f2", "<f4", ">f4",
                     "<f8", ">f8"]:
            data = (rng.normal(size=(6, 5)) * 100).astype(code)
            types.create_dataset(code.replace("<", "le_").replace(">", "be_"), data=data)
        types["bool"] = rng.random((4, 3)) > 0.5
        types["complex64"] = (rng.normal(size=7) + 1j * rng.normal(size=7)).astype("<c8")
        types["complex128_be"] = (rng.normal(size=7) + 1j * rng.normal(size=7)).astype(">c16")
        enum = h5py.enum_dtype({"RED": 0, "GREEN": 1, "BLUE": 42}, basetype="i1")
        types.create_dataset("enum", data=np.array([0, 1, 42, 1], "i1"), dtype=enum)
        nested = np.zeros(5, NESTED)
        nested["a"], nested["inner"]["p"], nested["inner"]["q"], nested["c"] = np.arange(5), 1.5, b"ab", np.pi
        types["compound_nested_gaps"] = nested
        ae = types.create_dataset("array_element", shape=(3, 4), dtype=np.dtype(("<f8", (2,))))
        ae[...] = rng.normal(size=(3, 4, 2))
        types["fixed_strings"] = np.array([b"alpha", b"be", b"gamma!"], dtype="S6")
        types["vlen_strings"] = np.array(["one", "two words", "thrée"], dtype=h5py.string_dtype())
        types["scalar_float"] = 2.5
        types["scalar_int"] = np.int32(-7)
        types["scalar_string"] = "a scalar string"
        types["scalar_bytes"] = np.bytes_(b"fixed scalar")
        types["empty"] = np.zeros((0, 3))
        types.create_dataset("null_space", data=h5py.Empty("f4"))
        d = types["le_f4"]
        d.attrs["units"] = "mm"
        d.attrs["scale"] = np.array([1.5, 2.5])
        d.attrs["vlen"] = "variable length"
        names = f.create_group("entry/names")
        for name in ODD_NAMES:
            names[name] = np.arange(3)
        names.create_group("group with spaces")
        names.id.links.create_hard(b"bad\xff\xfeutf8", names.id, b"with space")
        links = f.create_group("entry/links")
        links["soft_dataset"] = h5py.SoftLink("/entry/types/le_f8")
        links["soft_group"] = h5py.SoftLink("/entry/types")
        links["soft_relative"] = h5py.SoftLink("hard")  # relative to the group
        links["soft_dangling"] = h5py.SoftLink("/nowhere/at/all")
        links["hard"] = f["entry/types/le_i4"]
        links["external"] = h5py.ExternalLink("other.h5", "/data/frames")
        links["external_group"] = h5py.ExternalLink("other.h5", "/data")
        links["external_missing"] = h5py.ExternalLink("does_not_exist.h5", "/x/y")
        links["external_outside"] = h5py.ExternalLink("/etc/hostname.h5", "/x")


def write_other(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("data/frames", data=np.arange(2 * 4 * 5, dtype=np.uint16).reshape(2, 4, 5))
        f["data"].attrs["NX_class"] = "NXdata"


def cube_data() -> np.ndarray:
    i, j, k = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in CUBE_SHAPE], indexing="ij")
    return (i * 1e6 + j * 1e3 + k).astype(np.float32)


def write_cube(path: Path) -> None:
    data = cube_data()
    with h5py.File(path, "w") as f:
        f.create_dataset("gzip", data=data, chunks=CUBE_CHUNKS, compression="gzip", shuffle=True)
        f.create_dataset("chunked", data=data, chunks=CUBE_CHUNKS)
        f.create_dataset("contiguous", data=data)
        f.create_dataset("bitshuffle", data=data, chunks=CUBE_CHUNKS, **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))
        f.create_dataset("blosc", data=data, chunks=CUBE_CHUNKS, **hdf5plugin.Blosc(cname="lz4", clevel=5))
        f.create_dataset("blosc2", data=data, chunks=CUBE_CHUNKS, **hdf5plugin.Blosc2(cname="zstd", clevel=3))
        f.create_dataset("zstd", data=data, chunks=CUBE_CHUNKS, **hdf5plugin.Zstd())
        f.create_dataset("lzf", data=data, chunks=CUBE_CHUNKS, compression="lzf")
        f.create_dataset("sparse", shape=(64, 64, 64), dtype="i4", chunks=(16, 16, 16), fillvalue=-1)
        f["sparse"][0:16, 0:16, 0:16] = 5
        # 4 TB of float64 that was never written: sizes come from metadata only
        f.create_dataset("huge", shape=(1000, 1000, 1000, 500), dtype="f8", chunks=(1, 1, 100, 500))


def write_userblock(path: Path) -> None:
    with h5py.File(path, "w", userblock_size=1024) as f:
        f["x"] = np.arange(10.0)
        f.create_dataset("y", data=np.arange(100.0).reshape(10, 10), chunks=(5, 5))
        f.create_dataset("z", data=np.arange(1 << 16, dtype="<i4").reshape(256, 256), chunks=(128, 256))
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB-like user block".ljust(1024, b" "))


def write_all(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {name: folder / name for name in ["main.h5", "other.h5", "cube.h5", "userblock.dat"]}
    write_main(out["main.h5"])
    write_other(out["other.h5"])
    write_cube(out["cube.h5"])
    write_userblock(out["userblock.dat"])
    (folder / "fake.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"not really hdf5" * 100)
    good = (out["other.h5"]).read_bytes()
    (folder / "truncated.h5").write_bytes(good[: len(good) // 3])
    (folder / "notes.txt").write_text("plain text passes through\n")
    sub = folder / "sub dir"
    sub.mkdir()
    (sub / "deeper.nxs").write_bytes(out["other.h5"].read_bytes())
    return out


#: many chunked datasets: files x datasets, each a 1-D float32 array of CHUNKS gzip
#: chunks of 4096 values (16 KiB: decoded outside h5py), its table 20 bytes a chunk
MANY_FILES, MANY_DATASETS, MANY_CHUNKS, MANY_CHUNK = 6, 10, 10_000, 4096


def write_many_chunked(root: Path) -> None:
    """``f<i>.h5`` with datasets ``d<j>``: the first and last chunks hold ``arange(4096) +
    100 * i + j`` and its negative, every other chunk is written and holds zeros (stored
    compressed, made in seconds)."""
    import zlib

    root.mkdir()
    zero = zlib.compress(bytes(MANY_CHUNK * 4))
    for i in range(MANY_FILES):
        with h5py.File(root / f"f{i}.h5", "w") as f:
            for j in range(MANY_DATASETS):
                ds = f.create_dataset(f"d{j}", shape=(MANY_CHUNKS * MANY_CHUNK,), chunks=(MANY_CHUNK,),
                                      dtype="<f4", compression="gzip")
                ds[:MANY_CHUNK] = np.arange(MANY_CHUNK, dtype="<f4") + 100 * i + j
                ds[-MANY_CHUNK:] = -ds[:MANY_CHUNK]
                for k in range(1, MANY_CHUNKS - 1):
                    ds.id.write_direct_chunk((k * MANY_CHUNK,), zero, 0)
