from __future__ import annotations

from pathlib import Path

import pytest

from micronbert.data.datasets.apex import largest_change_apex, midpoint_apex, resolve_apex
from tests.data.fixture_trees import write_clip


def test_midpoint_rounds_down_and_checks_order() -> None:
    assert midpoint_apex(10, 16) == 13
    assert midpoint_apex(10, 15) == 12
    with pytest.raises(ValueError):
        midpoint_apex(5, 4)


def test_largest_change_finds_the_peak_frame(tmp_path: Path) -> None:
    frames = write_clip(tmp_path, range(95, 106), "img{n}.jpg", apex=101)
    assert largest_change_apex(frames) == 101
    assert resolve_apex(frames, 95, 105, "estimate").source == "estimated"


def test_midpoint_method_ignores_frames(tmp_path: Path) -> None:
    frames = write_clip(tmp_path, range(1, 11), "img{n}.jpg", apex=9)
    estimate = resolve_apex(frames, 1, 10, "midpoint")
    assert (estimate.frame, estimate.source) == (5, "midpoint")


def test_estimate_falls_back_to_midpoint_on_unreadable_frames(tmp_path: Path) -> None:
    frames = write_clip(tmp_path, range(1, 6), "img{n}.jpg", apex=4)
    frames[2].write_bytes(b"")
    estimate = resolve_apex(frames, 1, 5, "estimate")
    assert (estimate.frame, estimate.source) == (3, "midpoint")
    assert "img3.jpg" in estimate.problem
    assert resolve_apex([], 1, 5, "estimate").source == "midpoint"
    with pytest.raises(ValueError, match="unknown apex method"):
        resolve_apex(frames, 1, 5, "peak")
