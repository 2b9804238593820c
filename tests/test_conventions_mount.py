"""Conventions through a real mount, against independent oracles: the NeXus default-plot
rules (written here from the NeXus manual, with h5py) and silx's NXdata parser for every
real NeXus/HDF5 file; RosettaSciIO's hspy reader for HyperSpy axes; PyMca's energy
convention (a + b*ch + c*ch**2) on h5py fixtures and, through silx's SpecFile, on real
SPEC files with #@CALIB; Pillow for plot.png."""

from __future__ import annotations

import io
import os
import posixpath
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest
from PIL import Image

from tests.mounting import mounted, require_module

pytestmark = pytest.mark.mount


def _text(v) -> str | None:
    if isinstance(v, np.ndarray) and v.size == 1:
        v = v.reshape(-1)[0]
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).decode()
    return str(v) if isinstance(v, (str, np.str_)) else None


def _cls(obj) -> str | None:
    return _text(obj.attrs.get("NX_class"))


def nexus_default(f: h5py.File) -> str | None:
    """The NeXus manual's rule: /@default names the entry, the entry's @default names the
    NXdata (followed while it names a group that is not NXdata); without an attribute the
    first NXentry, then its first NXdata. Returns the path without the leading "/"."""
    g, path = f, ""
    for _ in range(8):
        if path and _cls(g) == "NXdata":
            return path
        name = _text(g.attrs.get("default"))
        target = None
        if name:
            cand = posixpath.normpath(name if name.startswith("/") else posixpath.join("/" + path, name))
            if isinstance(f.get(cand), h5py.Group):
                target = cand.strip("/")
        if target is None:
            want = "NXentry" if not path else "NXdata"
            kids = [k for k in g if g.get(k, getlink=True).__class__ is not h5py.ExternalLink
                    and isinstance(g.get(k), h5py.Group) and _cls(g[k]) == want]
            if not kids:
                return None
            target = posixpath.join(path, kids[0])
        path, g = target, f[target]
    return None


def nexus_files(real: Path) -> list[Path]:
    files = [p for d in ("nexus", "hdf5") for p in sorted((real / d).iterdir()) if p.is_file()]
    return [p for p in files if h5py.is_hdf5(p) and p.name not in ("Tables_lzo1.h5", "float.h5")]


def new_source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    return src


@pytest.fixture(scope="module")
def real_mount(tmp_path_factory, real_data):
    mnt = tmp_path_factory.mktemp("conv") / "m"
    with mounted(real_data, mnt) as m:
        yield real_data, m


def test_default_link_of_every_real_nexus_file(real_mount):
    real, mnt = real_mount
    nxdata = require_module("silx.io.nxdata")
    checked = with_default = 0
    for path in nexus_files(real):
        view = mnt / path.relative_to(real)
        with h5py.File(path, "r") as f:
            expected = nexus_default(f)
            silx_default = nxdata.get_default(f, validate=False)
            if silx_default is not None and expected is not None:  # silx follows @default only
                assert f[expected] == silx_default.group, path
        link = view / "default"
        if expected is None:
            assert not os.path.lexists(link), path
        else:
            assert os.readlink(link) == expected, path
            assert link.is_dir()
            with_default += 1
        checked += 1
    assert checked >= 20 and with_default >= 10


def test_signal_and_axes_links_of_every_real_nxdata(real_mount):
    real, mnt = real_mount
    nxdata = require_module("silx.io.nxdata")
    groups = 0
    for path in nexus_files(real):
        with h5py.File(path, "r") as f:
            found: list[str] = []
            f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Group) and _cls(o) == "NXdata" else None)
            for name in found:
                try:
                    parsed = nxdata.NXdata(f[name], validate=False)
                except Exception:  # silx gives up (a dangling external link, no signal)
                    continue
                if not parsed.is_valid:
                    continue
                folder = mnt / path.relative_to(real) / name
                signal = parsed.signal_dataset_name
                assert os.readlink(folder / "signal.npy") == f"{signal}.npy", (path, name)
                assert np.array_equal(np.load(folder / "signal.npy"), f[name][signal][()], equal_nan=True)
                axes = {k: a for k, a in enumerate(parsed.axes_dataset_names) if a is not None and a in f[name]}
                links = {int(n[5:-4]): os.readlink(folder / n)[:-4]
                         for n in os.listdir(folder) if n.startswith("axis_") and n.endswith(".npy")}
                assert links == axes, (path, name)
                groups += 1
    assert groups >= 10


def test_link_names_give_way_to_real_children(tmp_path, mount):
    src = new_source(tmp_path)
    with h5py.File(src / "clash.nxs", "w") as f:
        f.create_group("default")  # a real member called "default"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("plot")
        data.attrs.update({"NX_class": "NXdata", "signal": "counts", "axes": ["x"]})
        data["counts"] = np.arange(5.0)
        data["x"] = np.arange(5.0) * 2
        data["signal"] = np.ones(3)  # a real dataset called "signal"
    with mount(src) as mnt:
        top = os.listdir(mnt / "clash.nxs")
        assert "default" in top and os.path.isdir(mnt / "clash.nxs/default")
        assert not os.path.islink(mnt / "clash.nxs/default")
        assert os.readlink(mnt / "clash.nxs/default~2") == "entry/plot"
        plot = mnt / "clash.nxs/entry/plot"
        assert np.array_equal(np.load(plot / "signal.npy"), np.ones(3))
        assert os.readlink(plot / "signal~2.npy") == "counts.npy"
        assert os.readlink(plot / "axis_0.txt") == "x.txt"


def test_default_without_attributes_and_old_style_signal(tmp_path, mount):
    src = new_source(tmp_path)
    with h5py.File(src / "plain.h5", "w") as f:
        f.create_group("aaa")  # not an NXentry
        e1 = f.create_group("b_entry")
        e1.attrs["NX_class"] = b"NXentry"
        e1.create_group("a_coll").attrs["NX_class"] = "NXcollection"
        d = e1.create_group("c_data")
        d.attrs["NX_class"] = np.bytes_("NXdata")
        d["t"] = np.linspace(0, 1, 7)
        d["i0"] = np.arange(7.0)
        d["i0"].attrs["signal"] = 1
        d["i0"].attrs["axes"] = "t"
        e1.create_group("d_data").attrs["NX_class"] = "NXdata"
        f.create_group("c_entry").attrs["NX_class"] = "NXentry"
    with h5py.File(src / "plain.h5", "r") as f:
        assert nexus_default(f) == "b_entry/c_data"
    with mount(src) as mnt:
        root = mnt / "plain.h5"
        assert os.readlink(root / "default") == "b_entry/c_data"
        assert os.readlink(root / "default/signal.npy") == "i0.npy"
        assert os.readlink(root / "default/axis_0.npy") == "t.npy"
        assert not os.path.lexists(root / "b_entry/d_data/signal.npy")


def test_plot_png_of_a_1d_signal(tmp_path, mount):
    src = new_source(tmp_path)
    energy = np.linspace(2.0, 12.0, 201)
    counts = np.zeros(201)
    counts[60] = 50.0  # a single peak at energy[60] = 5.0
    with h5py.File(src / "spec.nxs", "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("data")
        data.attrs.update({"NX_class": "NXdata", "signal": "counts", "axes": "energy"})
        data["counts"], data["energy"] = counts, energy
    with mount(src) as mnt:
        raw = (mnt / "spec.nxs/default/plot.png").read_bytes()
        assert len(raw) == os.stat(mnt / "spec.nxs/entry/data/plot.png").st_size
    img = Image.open(io.BytesIO(raw))
    img.load()
    assert img.format == "PNG" and img.size == (640, 400) and img.mode == "L"
    assert "x from 2 to 12; y from 0 to 50" in img.text["Description"]
    px = np.asarray(img)
    area = px[20:350, 80:620]  # the documented plot area
    rows, cols = np.nonzero(area < 128)
    top = cols[rows == rows.min()]  # the peak's tip: the topmost dark pixels
    expected = (5.0 - 2.0) / (12.0 - 2.0) * (620 - 1 - 80)
    assert rows.min() == 0 and abs(top.mean() - expected) <= 1.5
    assert (area[-1, :] < 128).sum() > 400  # the zero baseline runs along the bottom row


def test_hyperspy_axes_against_rosettasciio(real_mount):
    real, mnt = real_mount
    hspy = require_module("rsciio.hspy")
    files = sorted((real / "hspy").iterdir()) + sorted((real / "hdf5").glob("*.hspy"))
    compared = 0
    for path in files:
        try:
            signals = hspy.file_reader(str(path), lazy=True)
        except Exception:
            continue  # e.g. an external link RosettaSciIO cannot follow
        with h5py.File(path, "r") as f:
            names = list(f["Experiments"])
        assert len(names) == len(signals), path
        for name, sig in zip(names, signals):
            for i, axis in enumerate(sig["axes"]):
                folder = mnt / path.relative_to(real) / "Experiments" / name / f"axis-{i}"
                if "axis" in axis:
                    expected = np.asarray(axis["axis"], np.float64)
                else:
                    expected = axis.get("offset", 0.0) + axis.get("scale", 1.0) * np.arange(axis["size"])
                got = np.load(folder / "axis.npy")
                assert got.dtype == np.float64 and np.array_equal(got, expected), (path, name, i)
                assert np.array_equal(np.loadtxt(folder / "axis.txt", ndmin=1), expected)
                compared += 1
    assert compared >= 8


def test_hyperspy_uniform_and_non_uniform_axes_written_by_rosettasciio(tmp_path, mount):
    hspy = require_module("rsciio.hspy")
    src = new_source(tmp_path)
    energy = np.array([1.0, 1.5, 2.5, 4.0, 6.0, 9.0, 13.0, 18.0, 24.0, 31.0, 39.0, 48.0])
    signal = {"data": np.arange(36.0).reshape(3, 12), "original_metadata": {}, "tmp_parameters": {},
              "axes": [{"size": 3, "scale": 0.25, "offset": -1.0, "name": "y", "navigate": True},
                       {"axis": energy, "name": "E", "navigate": False}],
              "metadata": {"General": {"title": "nu"}, "Signal": {"signal_type": ""}},
              "attributes": {"_lazy": False}, "learning_results": {}, "models": {},
              "package_info": {"name": "hyperspy", "version": "2.0"}}
    hspy.file_writer(str(src / "nu.hspy"), signal)
    axes = hspy.file_reader(str(src / "nu.hspy"))[0]["axes"]
    with mount(src) as mnt:
        folder = mnt / "nu.hspy/Experiments/nu"
        assert np.array_equal(np.load(folder / "axis-0/axis.npy"),
                              axes[0]["offset"] + axes[0]["scale"] * np.arange(axes[0]["size"]))
        assert np.array_equal(np.load(folder / "axis-0/axis.npy"), [-1.0, -0.75, -0.5])
        assert np.array_equal(np.load(folder / "axis-1/axis.npy"), axes[1]["axis"])
        assert sorted(os.listdir(folder / "axis-1")) == [".attrs.txt", "axis.npy", "axis.txt"]  # stored, once


def test_pymca_energy_axis_hdf5(tmp_path, mount):
    src = new_source(tmp_path)
    with h5py.File(src / "xrf.h5", "w") as f:
        a = f.create_group("stack")
        a["data"] = np.ones((3, 4, 64), np.float32)
        a["calibration"] = [1.5, 0.01, 1e-5]
        b = f.create_group("offset_channels")
        b["data"] = np.ones((2, 32), np.uint16)
        b["calibration"] = [0.1, 0.02]
        b["channels"] = np.arange(100, 132)
        c = f.create_group("bad")  # a calibration of 4 values is not PyMca's
        c["data"], c["calibration"] = np.ones((2, 8)), np.ones(4)
    with mount(src) as mnt:
        ch = np.arange(64.0)
        assert np.array_equal(np.load(mnt / "xrf.h5/stack/energy.npy"), 1.5 + 0.01 * ch + 1e-5 * ch * ch)
        ch2 = np.arange(100.0, 132.0)
        assert np.array_equal(np.load(mnt / "xrf.h5/offset_channels/energy.npy"), 0.1 + 0.02 * ch2)
        assert np.array_equal(np.loadtxt(mnt / "xrf.h5/offset_channels/energy.txt"), 0.1 + 0.02 * ch2)
        assert not os.path.lexists(mnt / "xrf.h5/bad/energy.npy")


def test_pymca_energy_axis_real_spec(real_mount):
    real, mnt = real_mount
    specfile = require_module("silx.io.specfile")
    compared = 0
    for name in ("silx_test_specfile_sftext.dat", "silx_test_spech5_sftext.dat", "33id_spec.dat"):
        sf = specfile.SpecFile(str(real / "spec" / name))
        keys = list(sf.keys())
        for i, key in enumerate(keys):
            try:
                scan = sf[i]
                mca = scan.mca
                n = len(mca)
            except Exception:
                continue
            folder = mnt / "spec" / name / key / "instrument"
            calibs = mca.calibration if n else []
            has_calib = any(b"@CALIB" in ln.encode() for ln in scan.header)
            for a in range(len(calibs)):
                energy = folder / f"mca_{a}" / "energy.npy"
                if not has_calib:
                    assert not energy.exists()
                    continue
                a0, b0, c0 = calibs[a]
                ch = np.asarray(mca.channels[a], np.float64)
                assert np.allclose(np.load(energy), a0 + b0 * ch + c0 * ch**2, rtol=0, atol=1e-12), (name, key)
                compared += 1
    assert compared >= 2
