"""Shared test fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_folder(name: str, what: str) -> Path:
    """``../shared/data/<name>`` (or under ``MICRONBERT_SHARED``); skips the test, naming ``what``, when absent."""
    folder = Path(os.environ.get("MICRONBERT_SHARED", REPO_ROOT.parent / "shared")) / "data" / name
    if not folder.is_dir():
        pytest.skip(f"{what} not available ({folder} is absent)")
    return folder


@pytest.fixture(scope="session")
def shared_annotations() -> Path:
    """The folder of real annotation files published by the dataset owners; skips when absent."""
    return _shared_folder("annotations", "real annotation files")


@pytest.fixture(scope="session")
def real_video() -> Path:
    """The folder of real face videos (see its README); skips when absent."""
    return _shared_folder("real_video", "real face videos")


@pytest.fixture(autouse=True, scope="session")
def _caches_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory):
    """Token, input and other caches that default to ~/.cache go to a folder of the test session instead."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg_cache")))
    yield
    patch.undo()


@pytest.fixture(autouse=True, scope="session")
def _one_thread_per_worker():
    """pytest-xdist runs one worker per core: keep each torch worker on one thread."""
    import torch

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
    yield
