from __future__ import annotations

from pathlib import Path

import pytest

import micronbert.datasets as public
from micronbert.data.datasets import DatasetWarning, available, get_reader, load, load_with_report, root_from_arguments
from tests.data.fixture_trees import build_casme2


def test_public_entry_point_and_names() -> None:
    assert public.load is load
    assert set(available()) >= {"casme2", "samm", "smic", "casme3", "casme_sq", "mmew", "4dme", "megc2019", "manifest"}
    with pytest.raises(ValueError, match="unknown dataset 'casme4'"):
        get_reader("casme4")


def test_load_warns_once_with_a_summary(tmp_path: Path) -> None:
    root = build_casme2(tmp_path)
    with pytest.warns(DatasetWarning, match=r"casme2: 7 samples, 1 dropped"):
        table = load("casme2", root)
    assert {"dataset", "subject", "clip", "onset", "apex", "offset", "emotion", "label"} <= set(table.columns)


def test_invalid_options_are_refused(tmp_path: Path) -> None:
    root = build_casme2(tmp_path)
    with pytest.raises(ValueError, match="missing_apex"):
        load_with_report("casme2", root, missing_apex="guess")
    with pytest.raises(FileNotFoundError, match="CASME II folder not found"):
        load("casme2", tmp_path / "absent")
    with pytest.raises(ValueError, match="layout"):
        load("casme2", root, layout="tiny")


def test_roots_from_the_command_line() -> None:
    assert root_from_arguments(["/data/CASME2"]) == "/data/CASME2"
    assert root_from_arguments("/data/run=3/CASME2") == "/data/run=3/CASME2"  # a path may hold '='
    assert root_from_arguments(["casme2=/d/CASME2", "gt=/d/gt=1.csv"]) == {"casme2": "/d/CASME2", "gt": "/d/gt=1.csv"}
    assert root_from_arguments(["smic=/d/SMIC"]) == {"smic": "/d/SMIC"}
    with pytest.raises(ValueError, match="no root given"):
        root_from_arguments([])
