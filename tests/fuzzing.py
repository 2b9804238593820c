"""Structure-aware fuzzing of the mount: generators of hostile SPEC, EDF and HDF5 files,
and the check that a mount survives them.

Used by tests/test_fuzz.py (a few hundred files in CI) and scripts/fuzz.py (as many as
asked). The generators build files the way writers do (SPEC lines, EDF ``key = value``
headers with gzip/bzip2 bodies, HDF5 files written by h5py or taken from the real data)
and then break them where parsers look: absurd counts, ranks and sizes, truncation at
the boundaries of the HDF5 structures, bit flips.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import os
import threading
import zlib
from pathlib import Path

import h5py
import numpy as np
from hypothesis import strategies as st

HUGE = [0, 1, 2, 3, 255, 65535, 65537, 1 << 20, (1 << 20) + 1, 1 << 31, 1 << 32, 1 << 48, 1 << 62, 10**18,
        -1, -(1 << 31), 900_000_000]
huge_int = st.one_of(st.sampled_from(HUGE), st.integers(-10, 10**6))
word = st.text(st.characters(codec="utf-8", exclude_characters="\n\r\0"), max_size=12)
token = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True).map(repr),
                  st.sampled_from(["nan", "None", "---", "1e999", "1_000", "0x10", ""]), word)


# -- SPEC -------------------------------------------------------------------------------
@st.composite
def spec_line(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["S", "N", "L", "data", "wide", "O", "P", "CHANN", "CALIB", "A", "G", "D",
                                 "F", "E", "C", "junk"]))
    if kind == "S":
        return f"#S {draw(huge_int)} {draw(word)}"
    if kind == "N":
        return f"#N {draw(huge_int)}"
    if kind == "L":
        return "#L " + "  ".join(draw(st.lists(word, max_size=8)))
    if kind == "data":
        return " ".join(draw(st.lists(token, max_size=8)))
    if kind == "wide":  # one line of many values (the report's 2,500,000 scaled down)
        return " ".join(["1"] * draw(st.sampled_from([1000, 65537, 70000])))
    if kind in "OP":
        return f"#{kind}{draw(st.integers(0, 3))} " + "  ".join(draw(st.lists(token, max_size=6)))
    if kind == "CHANN":
        return f"#@CHANN {draw(huge_int)} {draw(huge_int)} {draw(huge_int)} {draw(huge_int)}"
    if kind == "CALIB":
        return "#@CALIB " + " ".join(draw(st.lists(token, max_size=4)))
    if kind == "A":
        values = draw(st.lists(st.integers(0, 10**6), max_size=40))
        cut = draw(st.integers(0, len(values)))
        return "@A " + " ".join(map(str, values[:cut])) + " \\\n " + " ".join(map(str, values[cut:]))
    if kind == "G":
        return f"#G{draw(st.integers(0, 3))} " + " ".join(draw(st.lists(token, max_size=10)))
    if kind == "D":
        return "#D " + draw(st.sampled_from(["Thu Jan 01 00:00:00 1970", "1700000000", "Mon 2024/13/45 99:99:99"]))
    if kind in "FEC":
        return f"#{kind} {draw(word)}"
    return draw(st.binary(max_size=40)).decode("latin-1").replace("\n", " ")


@st.composite
def spec_file(draw: st.DrawFn) -> bytes:
    lines = ["#F fuzz.spec", "#E 1"] + draw(st.lists(spec_line(), min_size=1, max_size=40))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    data = (eol.join(lines) + eol).encode("utf-8", "surrogateescape")
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


# -- EDF --------------------------------------------------------------------------------
DATA_TYPES = ["UnsignedShort", "SignedInteger", "FloatValue", "DoubleValue", "UnsignedByte", "Signed64", "Nonsense"]


@st.composite
def edf_frame(draw: st.DrawFn) -> bytes:
    rows, cols = draw(st.integers(0, 16)), draw(st.integers(0, 16))
    keys: dict[str, object] = {"HeaderID": "EH:000001:000000:000000", "Image": 1,
                               "ByteOrder": draw(st.sampled_from(["LowByteFirst", "HighByteFirst"])),
                               "DataType": draw(st.sampled_from(DATA_TYPES)), "Dim_1": cols, "Dim_2": rows}
    body = bytes(draw(st.binary(min_size=rows * cols * 2, max_size=rows * cols * 2 + 16)))
    compression = draw(st.sampled_from([None, "gzip", "zlib", "bz2", "byte_offset"]))
    if compression:
        keys["Compression"] = compression
        if draw(st.booleans()):  # a bomb: far more than the frame declares
            body = bytes(draw(st.sampled_from([1 << 20, 16 << 20])))
        body = {"gzip": gzip.compress, "zlib": zlib.compress, "bz2": bz2.compress}.get(compression, bytes)(body)
    for key in draw(st.lists(st.sampled_from(["Dim_3", "Dim_900000000", "Dim_1", "Size", "EDF_BinarySize",
                                              "EDF_HeaderSize", "Dim_33", "motor_mne", "motor_pos"]), max_size=3)):
        keys[key] = draw(st.one_of(huge_int, word))
    if draw(st.booleans()):
        keys["Size"] = len(body)
    text = "".join(f"{k} = {v} ;\n" for k, v in keys.items()).encode("utf-8", "surrogateescape")
    pad = draw(st.sampled_from([0, 512])) + (-(len(text) + 4)) % 512
    return b"{\n" + text + b" " * pad + b"}\n" + body


@st.composite
def edf_file(draw: st.DrawFn) -> bytes:
    data = b"".join(draw(st.lists(edf_frame(), min_size=1, max_size=4)))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    wrap = draw(st.sampled_from([None, "gzip", "bz2"]))
    if wrap == "gzip":
        data = gzip.compress(data, 1)
    elif wrap == "bz2":
        data = bz2.compress(data, 1)
    return data


# -- HDF5 -------------------------------------------------------------------------------
def seed_hdf5(path: Path) -> None:
    """A small file with the structures a parser walks: groups, attributes, contiguous,
    chunked, compressed, compound, variable-length and link objects."""
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "seed"
        g = f.create_group("entry")
        g.attrs["NX_class"] = "NXentry"
        g["contiguous"] = np.arange(64, dtype="<f8").reshape(8, 8)
        g.create_dataset("chunked", data=np.arange(4096, dtype="<i4").reshape(64, 64), chunks=(16, 16))
        g.create_dataset("gzip", data=np.arange(2048, dtype="<u2"), chunks=(256,), compression="gzip")
        g["compound"] = np.zeros(4, [("a", "<i2"), ("b", "<f8")])
        g.create_dataset("vlen", data=["a", "bb", "ccc"], dtype=h5py.string_dtype())
        g["scalar"] = 3.5
        g["soft"] = h5py.SoftLink("/entry/contiguous")
        g["ext"] = h5py.ExternalLink("other.h5", "/x")


def boundaries(path: Path) -> list[int]:
    """Offsets where HDF5 structures start: object headers, raw data, chunks."""
    found = {0, 8, 48, 96}
    try:
        with h5py.File(path, "r") as f:
            def visit(_: str, obj: object) -> None:
                try:
                    found.add(h5py.h5o.get_info(obj.id).addr)  # type: ignore[attr-defined]
                    if isinstance(obj, h5py.Dataset):
                        offset = obj.id.get_offset()
                        if offset is not None:
                            found.add(offset)
                        if obj.chunks:
                            obj.id.chunk_iter(lambda info: found.add(info.byte_offset))
                except Exception:
                    pass
            f.visititems(visit)
    except Exception:
        pass
    size = path.stat().st_size
    return sorted(o for o in found if 0 <= o < size)


@st.composite
def hdf5_mutant(draw: st.DrawFn, seeds: list[tuple[bytes, list[int]]]) -> bytes:
    data, marks = draw(st.sampled_from(seeds))
    kind = draw(st.sampled_from(["truncate", "flip", "absurd", "flips"]))
    if kind == "truncate":
        mark = draw(st.sampled_from(marks))
        return data[: max(mark + draw(st.integers(-8, 64)), 0)]
    out = bytearray(data)
    if kind == "absurd":  # an 8-byte field near a structure start set to a huge size
        at = min(draw(st.sampled_from(marks)) + draw(st.integers(0, 96)), len(out) - 8)
        out[at : at + draw(st.sampled_from([2, 4, 8]))] = b"\xff" * 8 if draw(st.booleans()) else b"\x7f" + b"\xff" * 7
        return bytes(out[: len(data)])
    for _ in range(1 if kind == "flip" else draw(st.integers(2, 16))):
        near = draw(st.sampled_from(marks))
        at = min(near + draw(st.integers(0, 512)), len(out) - 1)
        out[at] ^= 1 << draw(st.integers(0, 7))
    return bytes(out)


# -- the check ----------------------------------------------------------------------------
DEAD = {errno.ENOTCONN, errno.ECONNABORTED}
READ = 64 << 10
MAX_ENTRIES = 300  # entries stat-ed and read per file (every folder is still listed)


def exercise(folder: Path, deadline: float = 5.0) -> str | None:
    """Walk ``folder`` the way users do (list, stat, read the start and end of each file,
    readlink, xattrs) in a thread; return why it failed: a hang past ``deadline``
    seconds or a dead mount (ENOTCONN). Other errors (EIO, ENOENT...) are answers.
    Every folder is listed; the first ``MAX_ENTRIES`` entries are also stat-ed and read."""
    problem: list[str] = []

    def walk() -> None:
        seen = 0
        try:
            for root, dirs, names in os.walk(folder):
                for name in names + dirs:
                    path = os.path.join(root, name)
                    seen += 1
                    if seen > MAX_ENTRIES:
                        break
                    try:
                        st_ = os.lstat(path)
                        os.listxattr(path, follow_symlinks=False)
                        if os.path.islink(path):
                            os.readlink(path)
                        elif name in names:
                            with open(path, "rb") as fh:
                                fh.read(READ)
                                if st_.st_size > READ:
                                    fh.seek(max(st_.st_size - 4096, 0))
                                    fh.read(4096)
                    except OSError as exc:
                        if exc.errno in DEAD:
                            problem.append(f"{path}: mount dead ({exc})")
                            return
        except OSError as exc:
            if exc.errno in DEAD:
                problem.append(f"{folder}: mount dead ({exc})")

    worker = threading.Thread(target=walk, daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        return f"{folder}: walk still running after {deadline} s"
    return problem[0] if problem else None
