import cv2
import numpy as np
import pytest
import torch

from micronbert.data.transforms import to_model_input
from micronbert.diagnostics import (
    maps_region_shares,
    mass_share,
    pair_maps,
    patch_coverage,
    reconstruction_vs_copy,
    reference_change_maps,
    region_mass_shares,
)
from micronbert.model import create_model


def test_patch_coverage_is_the_covered_fraction_of_each_patch():
    mask = np.zeros((16, 16), bool)
    mask[:8, :8] = True
    mask[8:12, 8:16] = True  # half of the last patch
    assert patch_coverage(mask, 8).tolist() == [1.0, 0.0, 0.0, 0.5]


def test_mass_share_counts_patch_coverage():
    assert mass_share(np.array([3.0, 1.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0, 0.0])) == 0.75
    assert mass_share(np.array([2.0, 2.0]), np.array([0.5, 0.0])) == 0.25
    assert mass_share(np.zeros(4), np.ones(4)) == 0.0


def test_region_mass_shares_of_each_map():
    torch.manual_seed(0)
    model = create_model("tiny")
    rng = np.random.default_rng(0)
    onsets = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    apexes = onsets.copy()
    apexes[:, 40:] = rng.integers(0, 256, (2, 24, 64, 3), dtype=np.uint8)  # only the bottom rows change
    masks = [np.zeros((64, 64), bool) for _ in range(2)]
    masks[0][:32] = True
    masks[1][:16, :16] = True
    shares = region_mass_shares(model, onsets, apexes, {"top": masks, "all": [np.ones((64, 64), bool)] * 2})
    assert np.isclose(shares["top"]["area"], (0.5 + 4 / 64) / 2)
    maps = pair_maps(model, onsets, apexes)
    assert set(maps) == {"change", "relative_change", "saliency"}
    assert all(values.shape == (2, 64) for values in maps.values())
    for name, values in maps.items():
        expected = np.mean([mass_share(values[i], patch_coverage(masks[i], 8)) for i in range(2)])
        assert np.isclose(shares["top"][name], expected)
    assert shares["all"] == {"change": 1.0, "relative_change": 1.0, "saliency": 1.0, "area": 1.0}
    with pytest.raises(ValueError, match="2 onsets, 2 apexes and 1 top masks"):
        region_mass_shares(model, onsets, apexes, {"top": masks[:1]})


def test_relative_change_map_is_zero_for_a_still_pair_and_marks_what_changed():
    torch.manual_seed(0)
    model = create_model("tiny")
    rng = np.random.default_rng(1)
    onsets = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    assert np.all(pair_maps(model, onsets, onsets)["relative_change"] == 0)
    apexes = onsets.copy()
    apexes[0, 40:] = 255 - apexes[0, 40:]  # rows 5-7 of the 8x8 patch grid
    relative = pair_maps(model, onsets, apexes)["relative_change"].reshape(8, 8)
    assert relative[5:].mean() > 2 * relative[:5].mean()


def test_pair_maps_add_the_surprise_map_with_a_volatility_head():
    torch.manual_seed(0)
    model = create_model("tiny", volatility_weight=1.0).eval()
    rng = np.random.default_rng(2)
    onsets = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    apexes = np.clip(onsets.astype(int) + rng.integers(-20, 21, onsets.shape), 0, 255).astype(np.uint8)
    maps = pair_maps(model, onsets, apexes, batch_size=2)
    assert set(maps) == {"change", "relative_change", "saliency", "surprise"}
    with torch.no_grad():
        apex_tokens = model.encode(to_model_input(apexes))
        expected = model.surprise(apex_tokens=apex_tokens, onset_tokens=model.encode(to_model_input(onsets)))
    np.testing.assert_allclose(maps["surprise"], expected.numpy(), rtol=1e-4, atol=1e-7)
    shares = region_mass_shares(model, onsets, apexes, {"all": [np.ones((64, 64), bool)] * 3})
    assert shares["all"]["surprise"] == pytest.approx(1.0)


def test_reference_change_maps_find_a_local_motion_and_a_local_change():
    rng = np.random.default_rng(3)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), (7, 7), 2)
    onset = texture[:, 16:80].copy()
    slid, recoloured = onset.copy(), onset.copy()
    slid[8:24, 8:24] = texture[8:24, 14:30]  # the top-left 2×2 patches slide 2 px
    recoloured[40:56, 40:56] = 255 - recoloured[40:56, 40:56]  # the bottom-right ones change colour
    maps = reference_change_maps(np.stack([onset, onset]), np.stack([slid, recoloured]), 8)
    assert maps["pixel_change"].shape == maps["farneback_motion"].shape == (2, 64)
    top_left, bottom_right = np.zeros((64, 64), bool), np.zeros((64, 64), bool)
    top_left[8:24, 8:24], bottom_right[40:56, 40:56] = True, True
    shares = maps_region_shares(maps, {"changed": [top_left, bottom_right]}, 8)
    assert shares["changed"]["area"] == pytest.approx(4 / 64)
    slid_shares = maps_region_shares({k: v[:1] for k, v in maps.items()}, {"changed": [top_left]}, 8)
    assert slid_shares["changed"]["farneback_motion"] > 0.5  # 6 % of the area, most of the motion
    assert shares["changed"]["pixel_change"] > 0.9
    assert np.all(reference_change_maps(onset[None], onset[None], 8)["pixel_change"] == 0)


def test_copy_baseline_is_zero_for_a_still_pair_and_positive_otherwise():
    torch.manual_seed(0)
    model = create_model("tiny")
    frame = torch.randn(2, 3, 64, 64)
    still = reconstruction_vs_copy(model, frame, frame.clone())
    assert still["copy_baseline_loss"] == 0.0 and still["rec_loss"] > 0
    moved = reconstruction_vs_copy(model, frame, frame + 0.1)
    assert np.isclose(moved["copy_baseline_loss"], 0.01 * 0.5, rtol=0.05)  # half the patches are swapped
