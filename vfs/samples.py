"""Sample data for the demo: a NeXus/HDF5 pair with links and filters, a SPEC file and
EDF images, small enough to write in seconds, with one cube big enough that reading it
whole would be noticed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_hdf5(folder: Path, cube_mb: int) -> list[Path]:
    import h5py
    import hdf5plugin

    rng = np.random.default_rng(0)
    main, other = folder / "sample.nxs", folder / "detector_data.h5"
    n = max(int((cube_mb * 2**20 / 4 / 512) ** 0.5), 16)
    with h5py.File(other, "w") as f:
        frames = rng.poisson(50, size=(8, 256, 256)).astype(np.uint32)
        f.create_dataset("entry/data/data", data=frames, chunks=(1, 256, 256),
                         **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))
        f["entry/data"].attrs["NX_class"] = "NXdata"
    with h5py.File(main, "w") as f:
        f.attrs["default"] = "entry"
        f.attrs["creator"] = "vfs sample"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry["title"] = "Sample scan: silver behenate, 10 s"
        entry["start_time"] = "2026-11-21T09:30:00"
        det = entry.create_group("instrument/detector")
        det.attrs["NX_class"] = "NXdetector"
        x, y = np.meshgrid(np.linspace(-1, 1, 512), np.linspace(-1, 1, 512))
        image = (1000 * np.exp(-(x**2 + y**2) * 8) + rng.normal(0, 5, x.shape)).astype(np.float32)
        d = det.create_dataset("image", data=image, chunks=(128, 128), compression="gzip", shuffle=True)
        d.attrs["units"] = "counts"
        d.attrs["long_name"] = "Detector image"
        det["live_time"] = np.linspace(0.99, 1.0, 20)
        det["distance"] = 1.5
        det["distance"].attrs["units"] = "m"
        cube = entry.create_dataset("cube/data", shape=(n, n, 512), dtype=np.float32, chunks=(16, 16, 512),
                                    compression="gzip", compression_opts=1)
        energy = np.linspace(1, 20, 512)
        for i in range(0, n, 16):
            block = np.exp(-((energy - 8) ** 2)) * rng.uniform(50, 100, (min(16, n - i), n, 1))
            cube[i : i + 16] = block.astype(np.float32)
        entry["cube/energy"] = energy
        entry["cube"].attrs["NX_class"] = "NXdata"
        entry["cube"].attrs["signal"] = "data"
        entry["blosc/frames"] = np.zeros(1)  # replaced below
        del entry["blosc/frames"]
        entry.create_dataset("blosc/frames", data=rng.integers(0, 1000, (4, 64, 64), dtype=np.uint16),
                             **hdf5plugin.Blosc(cname="zstd", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))
        table = np.zeros(5, dtype=[("h", "i4"), ("k", "i4"), ("l", "i4"), ("intensity", "f8")])
        table["h"], table["intensity"] = np.arange(5), np.linspace(1, 2, 5)
        entry["reflections"] = table
        entry["data"] = h5py.SoftLink("/entry/instrument/detector/image")
        entry["frames"] = h5py.ExternalLink(other.name, "/entry/data/data")
        entry["missing"] = h5py.ExternalLink("not_here.h5", "/entry/data")
        f["entry/instrument/same_detector"] = det
    return [main, other]


def write_spec(folder: Path) -> Path:
    path = folder / "scans.spec"
    rng = np.random.default_rng(1)
    lines = ["#F scans.spec", "#E 1795254600", "#D Sat Nov 21 09:30:00 2026", "#C vfs sample  User = demo",
             "#O0 samx  samy  samz  th", ""]
    for s in range(1, 4):
        npts = 21
        th = np.linspace(10, 12, npts)
        lines += [f"#S {s}  ascan  th 10 12 20 0.1", "#D Sat Nov 21 09:3%d:00 2026" % s, "#T 0.1  (Seconds)",
                  f"#P0 0.5 -1.25 {s} 10", "#N 4", "#L th  Monitor  I0/I1  Detector"]
        for t in th:
            peak = 1000 * np.exp(-((t - 11) ** 2) * 20)
            lines.append(f"{t:.4f} {100000} {rng.uniform(0.9, 1.1):.5f} {rng.poisson(peak + 10)}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_edf(folder: Path) -> list[Path]:
    import fabio
    import fabio.edfimage

    rng = np.random.default_rng(2)
    single = folder / "frame_0001.edf"
    header = {"motor_mne": "samx samy", "motor_pos": "0.5 -1.25", "counter_mne": "mon det",
              "counter_pos": "100000 4321", "ExposureTime": "0.1"}
    fabio.edfimage.EdfImage(data=rng.poisson(20, (256, 320)).astype(np.uint16), header=header).write(str(single))
    stack = folder / "stack.edf"
    img = fabio.edfimage.EdfImage(data=rng.poisson(5, (128, 128)).astype(np.uint16), header=header)
    for _ in range(9):
        img.append_frame(data=rng.poisson(5, (128, 128)).astype(np.uint16), header=header)
    img.write(str(stack))
    return [single, stack]


def write_samples(folder: str | os.PathLike[str], cube_mb: int = 256) -> list[Path]:
    """Write the sample files into ``folder`` (created if needed); return their paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = write_hdf5(out, cube_mb) + [write_spec(out)] + write_edf(out)
    (out / "README.txt").write_text("Sample data written by 'vfs sample'. Plain files like this one pass through.\n")
    return paths
