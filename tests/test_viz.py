"""The pictures: patch maps as images, overlays, the per-sample figure and atomic saving."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from micronbert.viz import overlay, pair_maps_figure, patch_map_to_image, save_figure_atomically


def test_a_patch_map_becomes_constant_blocks_in_row_major_order():
    image = patch_map_to_image(np.arange(6), grid_h=2, grid_w=3, height=4, width=6)

    assert image.shape == (4, 6)
    assert image[:2, :2].tolist() == [[0, 0], [0, 0]]
    assert image[0, ::2].tolist() == [0, 1, 2]
    assert image[2, ::2].tolist() == [3, 4, 5]


def test_overlay_scales_the_heat_by_its_own_range():
    grey = np.full((2, 2, 3), 100, np.uint8)

    low_and_high = overlay(grey, np.array([[5.0, 5.0], [7.0, 7.0]]), cmap="gray")
    flat = overlay(grey, np.full((2, 2), 3.0), cmap="gray")

    assert low_and_high[0, 0].tolist() == [50, 50, 50]  # lowest value: black at half opacity
    assert low_and_high[1, 0].tolist() == [178, 178, 178]  # highest: white, (100 + 255) / 2 rounded
    assert (flat == 50).all()


def _figure(probabilities=(0.2, 0.7, 0.1)):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    change = patch_map_to_image(np.linspace(0.0, 0.8, 4), 2, 2, 16, 16)
    saliency = patch_map_to_image(np.array([0.5, 1.0, 1.5, 1.0]), 2, 2, 16, 16)
    return pair_maps_figure(frame, frame, change, saliency, title="s01/EP01", probabilities=probabilities,
                            class_names=["negative", "positive", "surprise"])


def test_the_sample_figure_has_colour_bars_in_the_maps_own_values():
    figure = _figure()
    try:
        colour_bars = [axis for axis in figure.axes if axis.get_label() == "<colorbar>"]
        assert [bar.get_ylim() for bar in colour_bars] == [pytest.approx((0.0, 0.8)), pytest.approx((0.5, 1.5))]
        assert [axis.get_title() for axis in figure.axes[:5]] == [
            "onset", "apex", "DMA change map", "PoI saliency", "probabilities"]
    finally:
        plt.close(figure)


def test_the_probability_bars_are_labelled_and_the_most_likely_class_stands_out():
    figure = _figure()
    try:
        bars = figure.axes[4]
        colours = [patch.get_facecolor() for patch in bars.patches]
        assert [text.get_text() for text in bars.texts] == ["0.20", "0.70", "0.10"]
        assert [label.get_text() for label in bars.get_yticklabels()] == ["negative", "positive", "surprise"]
        assert colours[1] != colours[0] and colours[0] == colours[2]
    finally:
        plt.close(figure)


def test_saving_writes_the_png_and_leaves_no_temporary_file(tmp_path):
    path = save_figure_atomically(_figure(probabilities=None), tmp_path / "maps" / "sample.png")

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["sample.png"]
