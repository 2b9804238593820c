"""fsspec's own abstract tests for a filesystem that can be read: ``get`` (copies out of
the filesystem to local disk, files, folders, globs, lists) run against the ``vfs``
filesystem. The scenarios fsspec builds by writing into the filesystem are written into
the SOURCE folder instead (the view is read-only); they appear as plain files."""

from __future__ import annotations

import os
import posixpath
from typing import Any

import pytest
from fsspec.implementations.local import LocalFileSystem
from fsspec.tests.abstract import AbstractFixtures
from fsspec.tests.abstract.get import AbstractGetTests

from vfs.fsspec_fs import VfsFileSystem


class TestVfsGet(AbstractFixtures, AbstractGetTests):  # type: ignore[misc]
    @pytest.fixture
    def fs(self, tmp_path: Any) -> VfsFileSystem:
        src = tmp_path / "src"
        src.mkdir()
        return VfsFileSystem(fo=str(src), skip_instance_cache=True)

    @pytest.fixture
    def fs_path(self) -> str:
        return ""

    @pytest.fixture
    def fs_join(self) -> Any:
        return posixpath.join

    def _in_source(self, fs: VfsFileSystem, make: Any) -> str:
        make(LocalFileSystem(auto_mkdir=True), os.path.join, fs.fo)
        return "source"

    @pytest.fixture
    def fs_bulk_operations_scenario_0(self, fs: VfsFileSystem) -> str:
        return self._in_source(fs, self._bulk_operations_scenario_0)

    @pytest.fixture
    def fs_glob_edge_cases_files(self, fs: VfsFileSystem) -> str:
        return self._in_source(fs, self._glob_edge_cases_files)

    @pytest.fixture
    def fs_dir_and_file_with_same_name_prefix(self, fs: VfsFileSystem) -> str:
        return self._in_source(fs, self._dir_and_file_with_same_name_prefix)

    @pytest.fixture
    def fs_10_files_with_hashed_names(self, fs: VfsFileSystem) -> str:
        return self._in_source(fs, self._10_files_with_hashed_names)

    def test_get_directory_recursive(self, fs: VfsFileSystem, *args: Any) -> None:  # type: ignore[override]
        """fsspec's version writes its scenario through the filesystem; here that write
        must be refused."""
        for write in (lambda: fs.mkdir("src"), lambda: fs.touch("src/file"), lambda: fs.pipe("x", b"1"),
                      lambda: fs.open("x", "wb"), lambda: fs.rm("source")):
            with pytest.raises(PermissionError):
                write()
