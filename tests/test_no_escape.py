"""Nothing escapes SOURCE: no link the mount makes resolves outside the mount, whatever
names and targets a file holds, and no byte outside SOURCE is read unless
``--allow-outside`` names its folder. The oracle for links is the kernel itself
(``os.path.realpath`` through the mount); for bytes, h5py/the source file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.edf_files import frame_block, sample, write_edf

pytestmark = pytest.mark.mount

UP = "/" + "../" * 12


def hostile_hdf5(path: Path) -> None:
    """The exploits of the bug report and their relatives."""
    with h5py.File(path, "w") as f:
        f.create_group("x::/y")
        f["x"] = h5py.ExternalLink("x", UP + "etc")  # shown as x -> x::/../../.. before
        f["abs_file"] = h5py.ExternalLink("/etc/passwd", "/a")
        f["up_file"] = h5py.ExternalLink("../../../../../../etc/hostname", "/a")
        f["nl"] = h5py.ExternalLink("a\nb", "/c\n/../../../etc")
        f["long"] = h5py.ExternalLink("y" * 3000, "/" + "z/" * 2000)
        f["dots"] = h5py.ExternalLink("..", "..")
        g = f.create_group("g")
        g["soft_up"] = h5py.SoftLink(UP + "etc")
        g["soft_rel"] = h5py.SoftLink("../../../../../../../etc")
        g["soft_colon"] = h5py.SoftLink("x::/" + "../" * 12 + "etc")
        g["d"] = np.arange(3.0)
        g["soft_d"] = h5py.SoftLink("/g/d")
        f.create_group("a\nb")["soft_nl"] = h5py.SoftLink("/a\nb/../../../..")


def symlinks_under(top: Path) -> list[Path]:
    out = []
    for folder, dirs, files in os.walk(top):
        out += [Path(folder) / n for n in dirs + files if os.path.islink(Path(folder) / n)]
    return out


def inside(path: str, top: Path) -> bool:
    return path == str(top) or path.startswith(str(top) + "/")


def test_no_link_resolves_outside_the_mount(tmp_path, mount):
    src = tmp_path / "src"
    src.mkdir()
    hostile_hdf5(src / "evil.h5")
    with mount(src) as mnt:
        links = symlinks_under(mnt / "evil.h5")
        names = {p.name for p in links}
        assert {"x", "abs_file", "up_file", "nl", "long", "dots", "soft_up", "soft_rel", "soft_colon",
                "soft_d.npy", "soft_nl"} <= names
        for link in links:
            target = os.readlink(link)
            assert "\0" not in target
            assert inside(os.path.realpath(link), mnt), (link, target)
        x = mnt / "evil.h5" / "x"
        assert os.readlink(x) == "x::%2F" + "..%2F" * 12 + "etc"
        assert not x.exists()
        assert (mnt / "evil.h5" / "x::" / "y").is_dir()  # the group itself is still there
        np.testing.assert_array_equal(np.load(mnt / "evil.h5" / "g" / "soft_d.npy"), np.arange(3.0))


def test_source_symlinks_keep_their_text(tmp_path, mount):
    src = tmp_path / "src"
    src.mkdir()
    (src / "etc").symlink_to("/etc")
    (src / "rel").symlink_to("../elsewhere")
    with mount(src) as mnt:
        assert os.readlink(mnt / "etc") == "/etc"
        assert os.readlink(mnt / "rel") == "../elsewhere"


@pytest.fixture
def outside_data(tmp_path):
    """SOURCE with data that name bytes in ``outside/`` (and in /etc/hostname)."""
    src, out = tmp_path / "src", tmp_path / "outside"
    src.mkdir()
    out.mkdir()
    host = Path("/etc/hostname").read_bytes()
    with h5py.File(src / "ext.h5", "w") as f:
        f.create_dataset("host", shape=(len(host),), dtype="u1", external=[("/etc/hostname", 0, len(host))])
        f.create_dataset("escape", shape=(8,), dtype="u1", external=[("../outside/raw.bin", 0, 8)])
        f.create_dataset("escape2d", shape=(2, 4), dtype="u1", external=[("../outside/raw.bin", 0, 8)])
        f.create_dataset("local", shape=(8,), dtype="u1", external=[("raw.bin", 0, 8)])
    (out / "raw.bin").write_bytes(bytes(range(100, 108)))
    (src / "raw.bin").write_bytes(bytes(range(8)))
    with h5py.File(out / "vsrc.h5", "w") as f:
        f["data"] = np.arange(12, dtype="<i4").reshape(3, 4)
    layout = h5py.VirtualLayout(shape=(3, 4), dtype="<i4")
    layout[:] = h5py.VirtualSource(str(out / "vsrc.h5"), "data", shape=(3, 4))
    with h5py.File(src / "vds.h5", "w") as f:
        f.create_virtual_dataset("data", layout)
    with h5py.File(src / "chain_src.h5", "w") as f:  # inside SOURCE, its raw data outside
        f.create_dataset("d", shape=(8,), dtype="u1", external=[("../outside/raw.bin", 0, 8)])
    chain = h5py.VirtualLayout(shape=(8,), dtype="u1")
    chain[:] = h5py.VirtualSource("chain_src.h5", "d", shape=(8,))
    with h5py.File(src / "chain.h5", "w") as f:
        f.create_virtual_dataset("d", chain)
    pixels = sample((6, 5), "i2")
    (out / "pixels.bin").write_bytes(pixels.tobytes())
    (src / "pixels.bin").symlink_to(out / "pixels.bin")  # a source link the EDF file names
    keys = {"EDF_BinaryFileName": "pixels.bin", "EDF_BinaryFilePosition": 0}
    block = frame_block(pixels, keys, size_key=False).replace(b"Image = 1 ;", b"Image = 1 ;\nEDF_BinarySize = 0 ;")
    write_edf(src / "ext.edf", [block[: -pixels.nbytes]])
    return src, out, host, pixels


def refused(path: Path) -> bool:
    try:
        path.read_bytes()
    except PermissionError as exc:
        return exc.errno == errno.EACCES
    return False


def test_bytes_outside_source_are_refused(outside_data, mount, tmp_path):
    src, out, host, pixels = outside_data
    log = tmp_path / "refuse.log"
    with mount(src, "--log-file", str(log)) as mnt:
        assert (mnt / "ext.h5" / "host.npy").stat().st_size == 128 + len(host)  # listed with its size
        for path in [mnt / "ext.h5" / "host.npy", mnt / "ext.h5" / "host.txt", mnt / "ext.h5" / "escape.npy",
                     mnt / "vds.h5" / "data.npy", mnt / "ext.edf" / "data.npy", mnt / "chain.h5" / "d.npy",
                     mnt / "ext.h5" / "escape2d.png", mnt / "ext.h5" / "escape2d.edf"]:
            assert refused(path), path
            assert refused(path), path
        assert np.load(mnt / "ext.h5" / "local.npy").tobytes() == (src / "raw.bin").read_bytes()
        text = log.read_text()
    assert text.count("/etc/hostname, outside SOURCE") == 1
    assert text.count("vds.h5:/data: refers to") == 1
    assert text.count("EDF_BinaryFileName: refers to") == 1


def test_allow_outside_reads_them(outside_data, mount):
    src, out, host, pixels = outside_data
    with mount(src, "--allow-outside", str(out), "--allow-outside", "/etc") as mnt:
        assert np.load(mnt / "ext.h5" / "host.npy").tobytes() == host
        assert np.load(mnt / "ext.h5" / "escape.npy").tobytes() == (out / "raw.bin").read_bytes()
        with h5py.File(src / "vds.h5", "r") as f:
            np.testing.assert_array_equal(np.load(mnt / "vds.h5" / "data.npy"), f["data"][()])
        np.testing.assert_array_equal(np.load(mnt / "ext.edf" / "data.npy"), pixels)
        assert np.load(mnt / "chain.h5" / "d.npy").tobytes() == (out / "raw.bin").read_bytes()


@pytest.mark.parametrize("path, target, shown", [
    ("/a.h5/l", "../b.h5/d.npy", "../b.h5/d.npy"),           # inside: kept
    ("/a.h5/g/l", "../../b.h5", "../../b.h5"),
    ("/a.h5/l", ".", "."),
    ("/l", "..", "%2E%2E"),                                   # climbs above the root
    ("/a.h5/l", "../../etc", "..%2F..%2Fetc"),
    ("/a.h5/l", "x::/../../etc", "x::%2F..%2F..%2Fetc"),     # '..' after a name
    ("/a.h5/l", "/etc/passwd", "%2Fetc%2Fpasswd"),            # absolute
    ("/a.h5/l", "a\0/../..", "a%00%2F..%2F.."),              # NUL
    ("/a.h5/l", "a//b", "a%2F%2Fb"),
    ("/a.h5/l", "50%/x", "50%/x"),
])
def test_contained_target(path, target, shown):
    from vfs.nodes import contained_target

    assert contained_target(path, target) == shown


def test_dangling_form_is_one_bounded_component():
    from vfs.nodes import MAX_LINK_TARGET, dangling_form

    long = dangling_form("f.h5::" + "/x" * 5000)
    assert "/" not in long and len(long.encode()) == MAX_LINK_TARGET
    assert dangling_form("a%2Fb/c") == "a%252Fb%2Fc"  # '%' escaped first: the form reads back
    assert dangling_form("a\nb") == "a%0Ab"


def kernel_depth(depth: int, target: str) -> int | None:
    """Where the kernel lands, in levels below the mount root, walking ``target`` from a
    folder ``depth`` levels down with no links on the way; None once it leaves the root."""
    if target.startswith("/"):
        return None
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return None
        elif part not in ("", "."):
            depth += 1
    return depth


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 6),
       st.lists(st.sampled_from(["/", ".", "..", ":", "a", "x::", "\0", "\n", "%"]), max_size=30).map("".join))
def test_shown_targets_never_climb_out(depth, target):
    from vfs.nodes import contained_target

    path = "/" + "/".join(["d"] * depth + ["link"])
    shown = contained_target(path, target)
    assert "\0" not in shown and shown != ""
    assert kernel_depth(depth, shown) is not None, (path, target, shown)


def test_vfs_cp_copies_no_escaping_link(tmp_path):
    """``vfs cp -r`` writes the links it copies as the mount shows them: on a real disk,
    too, none of them leads outside the copy."""
    import subprocess
    import sys

    src, dest = tmp_path / "src", tmp_path / "copy"
    src.mkdir()
    hostile_hdf5(src / "evil.h5")
    subprocess.run([sys.executable, "-m", "vfs", "cp", "-r", str(src / "evil.h5"), str(dest)],
                   check=True, capture_output=True, timeout=120)
    links = symlinks_under(dest)
    assert {"x", "soft_up", "soft_colon"} <= {p.name for p in links}
    for link in links:
        assert inside(os.path.realpath(link), dest), (link, os.readlink(link))
