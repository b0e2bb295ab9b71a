"""Every figure micronbert draws: DMA change maps and PoI saliency over the face, pre-training previews and
curves, training losses, confusion matrices."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import matplotlib
import numpy as np

from micronbert.io import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402


def patch_map_to_image(values: np.ndarray, grid_h: int, grid_w: int, height: int, width: int) -> np.ndarray:
    """A per-patch map (N,) → a (height, width) image, each patch a constant block (nearest)."""
    grid = np.asarray(values, dtype=np.float32).reshape(grid_h, grid_w)
    return np.kron(grid, np.ones((height // grid_h, width // grid_w), dtype=np.float32))


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a heat map (scaled to [0, 1] by its own range) over an RGB uint8 image."""
    heat = np.asarray(heat, dtype=np.float32)
    span = float(heat.max() - heat.min())
    heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    colours = plt.get_cmap(cmap)(heat)[..., :3] * 255.0
    return (image.astype(np.float32) * (1 - alpha) + colours * alpha).round().astype(np.uint8)


def save_figure_atomically(figure: plt.Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write a figure as PNG through a temporary file, then close it."""
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=dpi, bbox_inches="tight", format="png")
    finally:
        plt.close(figure)
    return Path(path)


def pair_maps_figure(onset: np.ndarray, apex: np.ndarray, change: np.ndarray, saliency: np.ndarray,
                     title: str = "", probabilities: Sequence[float] | None = None,
                     class_names: Sequence[str] | None = None, truth: np.ndarray | None = None,
                     relative_change: np.ndarray | None = None, surprise: np.ndarray | None = None) -> plt.Figure:
    """Onset, apex, DMA change map, relative change map and surprise map if given, and PoI saliency over the apex;
    class probabilities as bars if given.

    The maps are (H, W) images (see :func:`patch_map_to_image`); ``truth``, a boolean (H, W) mask of where the
    face really moved, is outlined in white on the change maps.
    """
    heats = [("DMA change map", change)]
    if relative_change is not None:
        heats.append(("relative change map", relative_change))
    if surprise is not None:
        heats.append(("surprise map", surprise))
    heats.append(("PoI saliency", saliency))
    panels = 2 + len(heats) + (probabilities is not None)
    figure, axes = plt.subplots(1, panels, figsize=(3.4 * panels, 3.4))
    for axis, image, name in zip(axes, (onset, apex), ("onset", "apex")):
        axis.imshow(image)
        axis.set_title(name)
        axis.axis("off")
    for axis, (name, heat) in zip(axes[2:], heats):
        axis.imshow(overlay(apex, heat))
        figure.colorbar(_heat_scale(heat), ax=axis, fraction=0.046, pad=0.02)
        axis.set_title(name)
        axis.axis("off")
        if truth is not None and name != "PoI saliency":
            axis.contour(truth.astype(np.float32), levels=[0.5], colors="white", linewidths=1.2)
    if probabilities is not None:
        _draw_probabilities(axes[-1], probabilities, class_names)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def _heat_scale(heat: np.ndarray, cmap: str = "jet") -> ScalarMappable:
    """The colour scale :func:`overlay` used for ``heat``, in the map's own values, for a colour bar."""
    low, high = float(np.min(heat)), float(np.max(heat))
    return ScalarMappable(norm=Normalize(low, high if high > low else low + 1e-6), cmap=cmap)


def _draw_probabilities(axis: plt.Axes, probabilities: Sequence[float], class_names: Sequence[str] | None) -> None:
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(probabilities))]
    best = int(np.argmax(probabilities))
    colours = ["tab:orange" if index == best else "tab:blue" for index in range(len(names))]
    bars = axis.barh(names, probabilities, color=colours)
    axis.bar_label(bars, labels=[f"{p:.2f}" for p in probabilities], padding=2)
    axis.set_xlim(0, 1.15)
    axis.invert_yaxis()
    axis.set_title("probabilities")


def draw_confusion(axis: plt.Axes, matrix: np.ndarray, class_names: Sequence[str], title: str) -> None:
    """A confusion matrix (rows true, columns predicted) with its counts, on ``axis``."""
    image = axis.imshow(matrix, cmap="Blues", vmin=0)
    axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axis.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > threshold else "black")
    axis.figure.colorbar(image, ax=axis)
    axis.set_title(title)


def training_curves_figure(rows: Sequence[dict], title: str = "pre-training",
                           copy_baseline: float | None = None) -> plt.Figure:
    """Curves of a ``metrics.jsonl`` log (see :func:`micronbert.train.pretrain.read_metrics`) against the step:
    losses and gradient norm (log scales), learning rate and throughput, one panel each.

    ``copy_baseline``, the reconstruction loss of copying the swapped input, is drawn as a dashed line.
    A series that a row lacks is left out of its panel.
    """
    if not rows:
        raise ValueError("no metrics rows to plot (the log is empty)")
    figure, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    panels = ((axes[0, 0], (("loss", "total loss"), ("rec_loss", "reconstruction"),
                            ("agree_loss", "contextual agreement"), ("motion_loss", "warp motion (px²)"),
                            ("volatility_loss", "volatility")),
               "loss", True),
              (axes[0, 1], (("lr", "learning rate"),), "learning rate", False),
              (axes[1, 0], (("samples_per_s", "samples/s"),), "throughput (samples/s)", False),
              (axes[1, 1], (("grad_norm", "gradient norm"),), "gradient norm (before clipping)", True))
    for axis, series, ylabel, log_scale in panels:
        for key, label in series:
            points = [(row["step"], row[key]) for row in rows if isinstance(row.get(key), (int, float))]
            if log_scale:
                points = [(step, value) for step, value in points if value > 0]
            if points:
                axis.plot(*zip(*points), label=label)
        if axis is axes[0, 0]:
            if copy_baseline is not None and copy_baseline > 0:
                axis.axhline(copy_baseline, color="grey", linestyle="--", label="copy-the-input (reconstruction)")
            axis.legend(fontsize="small")
        if log_scale and axis.lines:
            axis.set_yscale("log")
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
    for axis in axes[1]:
        axis.set_xlabel("step")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def training_loss_figure(runs: Sequence[Sequence[float]], title: str = "training loss") -> plt.Figure:
    """Mean training loss per epoch of one run or of several (the folds of an evaluation: one thin line each,
    their mean in bold)."""
    runs = [list(run) for run in runs if len(run)]
    if not runs:
        raise ValueError("no training losses to plot")
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for run in runs:
        axis.plot(range(1, len(run) + 1), run, color="tab:blue", alpha=1.0 if len(runs) == 1 else 0.25,
                  linewidth=1.5 if len(runs) == 1 else 0.8)
    if len(runs) > 1:
        length = min(len(run) for run in runs)
        mean = np.mean([run[:length] for run in runs], axis=0)
        axis.plot(range(1, length + 1), mean, color="tab:orange", linewidth=2.2, label=f"mean of {len(runs)} folds")
        axis.legend()
    axis.set_xlabel("epoch")
    axis.set_ylabel("training loss (cross-entropy)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], title: str) -> plt.Figure:
    """The confusion matrix (rows true, columns predicted) with counts."""
    size = 1.0 + 0.7 * len(class_names)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    draw_confusion(axis, matrix, class_names, title)
    return figure


def confusion_grid_figure(matrices: Sequence[np.ndarray], titles: Sequence[str], class_names: Sequence[str],
                          title: str) -> plt.Figure:
    """Several confusion matrices side by side (one per method)."""
    figure, axes = plt.subplots(1, len(matrices), figsize=(4.4 * len(matrices), 3.8), squeeze=False)
    for axis, matrix, name in zip(axes[0], matrices, titles):
        draw_confusion(axis, np.asarray(matrix), class_names, name)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


SPOT_COLOURS = {"micro": "tab:red", "macro": "tab:blue", "blink": "tab:green"}


def spotting_timeline_figure(seconds: np.ndarray, curves: dict[str, tuple[np.ndarray, float]],
                             intervals: Sequence[tuple[float, float, str]], faceless: Sequence[tuple[float, float]],
                             thumbnails: Sequence[tuple[float, np.ndarray]], duration: float,
                             title: str) -> plt.Figure:
    """A spotting timeline: one panel per class with its score curve against ``seconds`` and its threshold (dashed),
    the spotted ``intervals`` (start s, end s, class) shaded in their class colour, the ``faceless`` stretches hatched
    grey; below, the ``thumbnails`` (time s, RGB image) of the face at the apex of the best intervals."""
    rows = max(1, len(curves))
    has_thumbs = bool(thumbnails)
    heights = [2.0] * rows + ([1.6] if has_thumbs else [])
    figure = plt.figure(figsize=(11, sum(heights) + 0.8))
    grid = figure.add_gridspec(len(heights), max(1, len(thumbnails)), height_ratios=heights)
    axes = [figure.add_subplot(grid[row, :]) for row in range(rows)]
    for axis, (name, (curve, threshold)) in zip(axes, curves.items()):
        axis.plot(seconds, curve, color=SPOT_COLOURS.get(name, "black"), linewidth=0.8, label=f"{name} score")
        axis.axhline(threshold, color="black", linestyle="--", linewidth=0.8, label="threshold")
        axis.set_ylabel(name)
        axis.legend(fontsize="small", loc="upper right")
    for axis in axes:
        for start, end, kind in intervals:
            axis.axvspan(start, end, color=SPOT_COLOURS.get(kind, "grey"), alpha=0.25, linewidth=0)
        for start, end in faceless:
            axis.axvspan(start, end, facecolor="none", edgecolor="grey", hatch="//", linewidth=0)
        axis.set_xlim(0, max(duration, 1e-6))
        axis.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s); shaded: spotted intervals (red micro, blue macro); hatched: no face")
    for column, (moment, image) in enumerate(thumbnails):
        axis = figure.add_subplot(grid[rows, column])
        axis.imshow(image)
        axis.set_title(f"{moment:.2f} s", fontsize="small")
        axis.axis("off")
    figure.suptitle(title, fontsize="medium")
    figure.tight_layout()
    return figure


def heat_to_rgb(heat: np.ndarray, width: int, height: int) -> np.ndarray:
    """A (grid_h, grid_w) map scaled by its maximum, enlarged to width×height (nearest) and coloured (inferno),
    as uint8 RGB."""
    heat = (255 * heat / max(float(heat.max()), 1e-12)).astype(np.uint8)
    heat = cv2.resize(heat, (width, height), interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def preview_grid(rows: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """Uint8 RGB images of equal size tiled as rows (one row per sample), e.g. I_t, I_{t/s}, reconstruction,
    change map."""
    return np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)
