import json

import numpy as np
import torch

from micronbert.train.photo_demo import (PhotoDemoConfig, face_photo, make_pair, mass_on_regions,
                                         run_photo_demo)


def test_pairs_move_only_the_chosen_regions():
    rng = np.random.default_rng(0)
    frame_t, frame_d, moved = make_pair(face_photo(), 64, rng, PhotoDemoConfig())
    assert frame_t.shape == frame_d.shape == (64, 64, 3) and moved.any()
    difference = np.abs(frame_t.astype(int) - frame_d.astype(int)).sum(-1)
    assert np.mean(difference[~moved] == 0) > 0.9  # far from the regions the frames are identical
    assert difference[moved].sum() > 0.7 * difference.sum()


def test_mass_on_regions_counts_patch_coverage():
    moved = np.zeros((16, 16), bool)
    moved[:8, :8] = True  # the first of four 8×8 patches
    change = torch.tensor([3.0, 1.0, 0.0, 0.0])
    assert mass_on_regions(change, moved, 8) == 0.75


def test_short_demo_run_writes_maps_and_lowers_the_loss(tmp_path):
    summary = run_photo_demo(tmp_path, PhotoDemoConfig(seconds=3, pool_size=64, batch_size=8))
    assert (tmp_path / "maps_before.png").stat().st_size > 0 and (tmp_path / "maps_after.png").stat().st_size > 0
    assert summary["rec_loss_last"] < 0.6 * summary["rec_loss_first"]
    assert 0 <= summary["mass_on_moved_regions_after"] <= 1
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == summary["steps"]
