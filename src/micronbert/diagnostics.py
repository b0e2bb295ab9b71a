"""What pre-training learned, measured: where the DMA change map puts its mass, and reconstruction against
the copy-the-input baseline. Used by the demo and by ``benchmarks/bench_pretrain.py``."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence

import cv2
import numpy as np
import torch

from micronbert.data.flow import optical_flow
from micronbert.data.pretrain_pairs import PretrainPairDataset, normalise_batch
from micronbert.data.transforms import to_model_input
from micronbert.model import MicronBERT, change_map, surprise_map
from micronbert.model.volatility import patch_change_energy


def patch_coverage(mask: np.ndarray, patch: int) -> np.ndarray:
    """Fraction of each ``patch``×``patch`` cell covered by a boolean (H, W) mask, row-major: (N,)."""
    grid_h, grid_w = mask.shape[0] // patch, mask.shape[1] // patch
    cells = mask[:grid_h * patch, :grid_w * patch].reshape(grid_h, patch, grid_w, patch)
    return cells.mean(axis=(1, 3)).reshape(-1)


def mass_share(values: np.ndarray, coverage: np.ndarray) -> float:
    """Share of a non-negative per-patch map's mass that falls on the covered patches."""
    values = np.asarray(values, dtype=np.float64)
    return float((values * coverage).sum() / max(values.sum(), 1e-12))


MAPS = ("change", "relative_change", "saliency")


@torch.no_grad()
def pair_maps(model: MicronBERT, onsets: np.ndarray, apexes: np.ndarray, batch_size: int = 32
              ) -> dict[str, np.ndarray]:
    """Per-patch maps of uint8 (onset, apex) pairs, each (n, N): ``change`` (the DMA change map 1 − a/max a,
    heads averaged), ``relative_change`` (:meth:`MicronBERT.relative_change`), ``saliency`` (PoI) and, when the
    model has a volatility head, ``surprise`` (:meth:`MicronBERT.surprise`).

    The onset takes the I_t slot and the apex the I_{t+δ} slot, as in recognition (METHOD.md §8).
    """
    model.eval()
    device = model.device
    names = MAPS + (("surprise",) if model.volatility_head is not None else ())
    maps: dict[str, list[np.ndarray]] = {name: [np.zeros((0, model.config.num_patches), np.float32)]
                                         for name in names}
    for start in range(0, len(onsets), batch_size):
        apex_tokens = model.encode(to_model_input(apexes[start:start + batch_size]).to(device))
        onset_tokens = model.encode(to_model_input(onsets[start:start + batch_size]).to(device))
        _, diagonal = model.dma(apex_tokens, onset_tokens)
        relative = model.relative_change(apex_tokens=apex_tokens, onset_tokens=onset_tokens, diagonal=diagonal)
        maps["change"].append(change_map(diagonal).float().cpu().numpy())
        maps["relative_change"].append(relative.float().cpu().numpy())
        maps["saliency"].append(model.saliency(apex_tokens).float().cpu().numpy())
        if "surprise" in maps:
            maps["surprise"].append(surprise_map(relative, model.volatility(apex_tokens)).float().cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in maps.items()}


def region_mass_shares(model: MicronBERT, onsets: np.ndarray, apexes: np.ndarray,
                       regions: Mapping[str, Sequence[np.ndarray]]) -> dict[str, dict[str, float]]:
    """For each named region (one boolean (S, S) mask per pair, at the model input size): the mean share of the
    mass of each map of :func:`pair_maps` (``change``, ``relative_change``, ``saliency``, ``surprise``) on its
    patches, next to the share of the image those patches cover (``area``: what a uniform map would give)."""
    _check_counts(onsets, apexes, regions)
    return maps_region_shares(pair_maps(model, onsets, apexes), regions, model.config.patch_size)


def reference_change_maps(onsets: np.ndarray, apexes: np.ndarray, patch: int) -> dict[str, np.ndarray]:
    """Change maps of uint8 (onset, apex) pairs that need no model, each (n, N), to compare the learned maps
    with: ``pixel_change`` (mean squared difference per patch, in the model's normalised units) and
    ``farneback_motion`` (length of the Farnebäck onset→apex flow averaged per patch, after removing its median over
    the patches, which cancels a global head shift)."""
    pixel = patch_change_energy(to_model_input(onsets), to_model_input(apexes), patch).numpy()
    grid = onsets.shape[1] // patch, onsets.shape[2] // patch
    motion = []
    for onset, apex in zip(onsets, apexes):
        cells = cv2.resize(optical_flow(onset, apex, "farneback"), grid[::-1], interpolation=cv2.INTER_AREA)
        cells = cells.reshape(-1, 2)
        motion.append(np.linalg.norm(cells - np.median(cells, axis=0), axis=1))
    return {"pixel_change": pixel, "farneback_motion": np.stack(motion).astype(np.float32)}


def maps_region_shares(maps: Mapping[str, np.ndarray], regions: Mapping[str, Sequence[np.ndarray]], patch: int
                       ) -> dict[str, dict[str, float]]:
    """For each named region (one boolean mask per pair) the mean share of each per-patch map's mass (maps (n, N))
    on its patches, and ``area``, the mean share of the image those patches cover."""
    shares = {}
    for name, masks in regions.items():
        coverages = [patch_coverage(np.asarray(mask, bool), patch) for mask in masks]
        shares[name] = {kind: float(np.mean([mass_share(m, cov) for m, cov in zip(values, coverages)]))
                        for kind, values in maps.items()}
        shares[name]["area"] = float(np.mean([cov.mean() for cov in coverages]))
    return shares


def _check_counts(onsets: np.ndarray, apexes: np.ndarray, regions: Mapping[str, Sequence[np.ndarray]]) -> None:
    for name, masks in regions.items():
        if not len(masks) == len(onsets) == len(apexes):
            raise ValueError(f"got {len(onsets)} onsets, {len(apexes)} apexes and {len(masks)} {name} masks")


@torch.no_grad()
def reconstruction_vs_copy(model: MicronBERT, frame_t: torch.Tensor, frame_d: torch.Tensor,
                           seed: int = 123) -> dict[str, float]:
    """Reconstruction loss of the model and of copying I_{t/s} (the swapped input) on the same normalised
    pairs and the same swap masks; the model must beat the copy to have learned anything about I_t."""
    model.eval()
    out = model(frame_t, frame_d, generator=torch.Generator(frame_t.device).manual_seed(seed))
    copy = model.reconstruction_loss(frame_t, model.patchify(out["swapped"]), out["swap_mask"])
    return {"rec_loss": float(out["rec_loss"]), "copy_baseline_loss": float(copy)}


def reconstruction_on_dataset(model: MicronBERT, dataset: PretrainPairDataset, count: int = 64) -> dict[str, float]:
    """:func:`reconstruction_vs_copy` on ``count`` pairs spread evenly over a pre-training pair dataset."""
    items = [dataset[int(i)] for i in np.linspace(0, len(dataset) - 1, count).astype(int)]
    device = model.device
    frame_t = normalise_batch(torch.stack([a for a, _ in items]), device)
    frame_d = normalise_batch(torch.stack([b for _, b in items]), device)
    return reconstruction_vs_copy(model, frame_t, frame_d)


HOST_READS = ("item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__")


@contextlib.contextmanager
def count_host_reads() -> Iterator[list[str]]:
    """Record every conversion of a tensor to a Python value made inside the block (``item``, ``tolist``,
    ``numpy``, ``bool``, ``int``, ``float``, indexing with a tensor): on a GPU each one waits for the device, a host
    synchronisation. Yields the list of the conversions' names, filled as they happen."""
    originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}
    reads: list[str] = []

    def counted(name: str, method: Callable) -> Callable:
        def read(self: torch.Tensor, *args: object, **kwargs: object) -> object:
            reads.append(name)
            return method(self, *args, **kwargs)
        return read

    try:
        for name, method in originals.items():
            setattr(torch.Tensor, name, counted(name, method))
        yield reads
    finally:
        for name, method in originals.items():
            setattr(torch.Tensor, name, method)
