import numpy as np
import pytest
import torch

from micronbert.model import create_model
from micronbert.train.diagnostics import (mass_share, pair_maps, patch_coverage,
                                          reconstruction_vs_copy, region_mass_shares)


def test_patch_coverage_is_the_covered_fraction_of_each_patch():
    mask = np.zeros((16, 16), bool)
    mask[:8, :8] = True
    mask[8:12, 8:16] = True  # half of the last patch
    assert patch_coverage(mask, 8).tolist() == [1.0, 0.0, 0.0, 0.5]


def test_mass_share_counts_patch_coverage():
    assert mass_share(np.array([3.0, 1.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0, 0.0])) == 0.75
    assert mass_share(np.array([2.0, 2.0]), np.array([0.5, 0.0])) == 0.25
    assert mass_share(np.zeros(4), np.ones(4)) == 0.0


def test_region_mass_shares_of_the_change_map_and_the_saliency():
    torch.manual_seed(0)
    model = create_model("tiny")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    masks = [np.zeros((64, 64), bool) for _ in range(2)]
    masks[0][:32] = True
    masks[1][:16, :16] = True
    shares = region_mass_shares(model, frames, frames, {"top": masks, "all": [np.ones((64, 64), bool)] * 2})
    assert np.isclose(shares["top"]["area"], (0.5 + 4 / 64) / 2)
    changes, saliency = pair_maps(model, frames, frames)
    assert changes.shape == saliency.shape == (2, 64)
    for name, values in (("change", changes), ("saliency", saliency)):
        expected = np.mean([mass_share(values[i], patch_coverage(masks[i], 8)) for i in range(2)])
        assert np.isclose(shares["top"][name], expected)
    assert shares["all"] == {"change": 1.0, "saliency": 1.0, "area": 1.0}
    with pytest.raises(ValueError, match="2 onsets, 2 apexes and 1 top masks"):
        region_mass_shares(model, frames, frames, {"top": masks[:1]})


def test_copy_baseline_is_zero_for_a_still_pair_and_positive_otherwise():
    torch.manual_seed(0)
    model = create_model("tiny")
    frame = torch.randn(2, 3, 64, 64)
    still = reconstruction_vs_copy(model, frame, frame.clone())
    assert still["copy_baseline_loss"] == 0.0 and still["rec_loss"] > 0
    moved = reconstruction_vs_copy(model, frame, frame + 0.1)
    assert np.isclose(moved["copy_baseline_loss"], 0.01 * 0.5, rtol=0.05)  # half the patches are swapped
