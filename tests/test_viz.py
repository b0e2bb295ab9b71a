"""The pictures: patch maps as images, overlays, the per-sample figure and atomic saving."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from micronbert.viz import (
    overlay,
    pair_maps_figure,
    patch_map_to_image,
    save_figure_atomically,
    training_curves_figure,
    training_loss_figure,
)


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


def test_the_relative_change_and_surprise_maps_get_their_own_panels_and_the_truth_outline():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    change = patch_map_to_image(np.linspace(0.0, 0.8, 4), 2, 2, 16, 16)
    relative = patch_map_to_image(np.array([0.0, 0.1, 0.3, 0.2]), 2, 2, 16, 16)
    truth = np.zeros((16, 16), bool)
    truth[4:12, 4:12] = True
    figure = pair_maps_figure(frame, frame, change, np.ones((16, 16)), truth=truth, relative_change=relative,
                              surprise=2 * relative)
    try:
        panels = [axis for axis in figure.axes if axis.get_label() != "<colorbar>"]
        assert [axis.get_title() for axis in panels] == [
            "onset", "apex", "DMA change map", "relative change map", "surprise map", "PoI saliency"]
        assert [len(axis.collections) > 0 for axis in panels[2:]] == [True, True, True, False]  # change maps outlined
        colour_bars = [axis for axis in figure.axes if axis.get_label() == "<colorbar>"]
        assert colour_bars[1].get_ylim() == pytest.approx((0.0, 0.3))
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


def metric_rows(agree_loss: float) -> list[dict]:
    return [{"step": step, "loss": 1.0 / step + agree_loss, "rec_loss": 1.0 / step, "agree_loss": agree_loss,
             "lr": 1e-3 * step / 3, "samples_per_s": 100.0 + step, "grad_norm": 2.0 / step} for step in (1, 2, 3)]


def test_training_curves_draw_each_logged_series_against_the_step():
    figure = training_curves_figure(metric_rows(agree_loss=0.5), "run", copy_baseline=0.4)
    losses, lr, throughput, grad = figure.axes

    assert [line.get_label() for line in losses.lines] == [
        "total loss", "reconstruction", "contextual agreement", "copy-the-input (reconstruction)"]
    assert losses.get_yscale() == "log"
    assert losses.lines[1].get_xdata().tolist() == [1, 2, 3]
    assert losses.lines[1].get_ydata().tolist() == pytest.approx([1.0, 0.5, 1 / 3])
    assert list(losses.lines[3].get_ydata()) == [0.4, 0.4]  # the baseline spans the axis
    assert lr.lines[0].get_ydata().tolist() == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3])
    assert throughput.lines[0].get_ydata().tolist() == [101.0, 102.0, 103.0]
    assert grad.lines[0].get_ydata().tolist() == pytest.approx([2.0, 1.0, 2 / 3]) and grad.get_yscale() == "log"
    plt.close(figure)


def test_training_curves_leave_out_a_zero_loss_and_a_missing_series():
    rows = [{key: value for key, value in row.items() if key != "grad_norm"} for row in metric_rows(0.0)]
    figure = training_curves_figure(rows)  # agreement off: its loss is 0, which a log scale cannot show
    losses, _, _, grad = figure.axes

    assert [line.get_label() for line in losses.lines] == ["total loss", "reconstruction"]
    assert len(grad.lines) == 0
    plt.close(figure)
    with pytest.raises(ValueError, match="empty"):
        training_curves_figure([])


def test_training_loss_of_several_folds_shows_each_and_their_mean():
    figure = training_loss_figure([[1.0, 0.5, 0.25], [3.0, 1.5, 0.75], []], "loso")
    axis = figure.axes[0]

    assert len(axis.lines) == 3  # two folds (the empty one is left out) and the mean
    assert axis.lines[-1].get_label() == "mean of 2 folds"
    assert axis.lines[-1].get_xdata().tolist() == [1, 2, 3]
    assert axis.lines[-1].get_ydata().tolist() == pytest.approx([2.0, 1.0, 0.5])
    plt.close(figure)
    single = training_loss_figure([[0.9, 0.4]])
    assert len(single.axes[0].lines) == 1 and single.axes[0].get_legend() is None
    plt.close(single)
    with pytest.raises(ValueError, match="no training losses"):
        training_loss_figure([[]])
