from __future__ import annotations

from pathlib import Path

import pytest

from micronbert.data.datasets import load, load_with_report
from micronbert.data.frames import frame_number
from tests.data.fixture_trees import CASME_SQ_ROWS, CASME_SQ_RULE1, build_casme_sq

pytestmark = pytest.mark.filterwarnings("ignore::micronbert.data.datasets.DatasetWarning")
MICRO = [row for row in CASME_SQ_ROWS if row[7] == "micro-expression"]
FOLDERS = {number: folder for folder, _, number in CASME_SQ_RULE1}


def test_micro_expressions_through_the_naming_rules(tmp_path: Path) -> None:
    table, report = load_with_report("casme_sq", build_casme_sq(tmp_path))
    assert len(table) == len(MICRO) and not report.dropped
    assert list(table["subject"]) == [f"casme_sq/{FOLDERS[row[0]]}" for row in MICRO]
    by_clip = table.set_index("clip")
    assert Path(by_clip.loc["anger1_1", "frames"][0]).parent.name == "15_0401angrywhirlwind"
    assert Path(by_clip.loc["funny2_1", "frames"][0]).parent.name == "23_0502funnyerrors"  # prefix differs from s19
    assert [frame_number(p) for p in by_clip.loc["anger1_1", "frames"]] == [5, 6, 7, 8, 9]
    assert Path(by_clip.loc["anger1_1", "frames"][0]).name == "img005.jpg"
    assert by_clip.loc["anger1_2", "offset"] == 22  # offset 0 -> apex
    assert set(table["fps"]) == {30.0}


def test_expression_type_option_and_annotation_only(tmp_path: Path) -> None:
    root = build_casme_sq(tmp_path)
    assert len(load("casme_sq", root, expression_type="all", check_frames=False)) == len(CASME_SQ_ROWS)
    macro = load("casme_sq", root, expression_type="macro")
    assert list(macro["clip"]) == [row[1] for row in CASME_SQ_ROWS if row[7] == "macro-expression"]
    with pytest.raises(ValueError, match="expression_type"):
        load("casme_sq", root, expression_type="mini")
