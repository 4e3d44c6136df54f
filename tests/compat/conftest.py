"""A bound, installed compatibility layer over real folders in tmp_path; removed again after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import compat
from engine.folders import Folders
from engine.registry import NodeRegistry


@pytest.fixture
def host(tmp_path: Path) -> Iterator[compat.Host]:
    folders = Folders.under(tmp_path / "loom")
    folders.ensure()
    yield compat.install(compat.Host(folders, NodeRegistry()))
    compat.uninstall()
