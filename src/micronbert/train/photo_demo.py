"""The built-in demo: pre-train ``tiny`` on micro-motion made from a real photo, and show the maps.

Frame pairs come from matplotlib's public-domain portrait of Grace Hopper: I_{t+δ} is I_t with one or
two small facial regions (brows, eyes, mouth corners) displaced by one or two pixels, plus the global
jitter and brightness change any recording has. A held-out pair's DMA change map and PoI saliency are
drawn before and after training, with the share of the change map's mass on the displaced regions.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import torch
from tqdm import tqdm

from ..data.transforms import to_model_input
from ..model import MicronBERT, change_map, create_model
from ..viz import pair_maps_figure, patch_map_to_image, save_figure_atomically

# Face box in the photo (x0, y0, side) and facial regions as fractions of that box; read off the image.
FACE_BOX = (140, 100, 240)
REGIONS = {
    "left brow": (0.36, 0.30), "right brow": (0.70, 0.30), "left eye": (0.36, 0.40),
    "right eye": (0.70, 0.40), "left mouth corner": (0.40, 0.73), "right mouth corner": (0.66, 0.73),
}


@dataclass
class PhotoDemoConfig:
    """Settings of the photo demo."""

    seconds: float = 60.0
    batch_size: int = 32
    pool_size: int = 512
    lr: float = 1e-3
    amplitude: tuple[float, float] = (1.0, 2.0)
    region_sigma: float = 0.05
    seed: int = 0


def face_photo() -> np.ndarray:
    """The demo's source photo (RGB uint8) from matplotlib's sample data."""
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path}: matplotlib's sample photo is missing or unreadable")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def face_view(photo: np.ndarray, size: int, shift: tuple[float, float] = (0.0, 0.0),
              gain: float = 1.0) -> np.ndarray:
    """The face crop resampled to ``size``² with a sub-pixel shift (in output pixels) and a gain."""
    x0, y0, side = FACE_BOX
    scale = size / side
    matrix = np.array([[scale, 0, -x0 * scale + shift[0]], [0, scale, -y0 * scale + shift[1]]], np.float32)
    view = cv2.warpAffine(photo, matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    return np.clip(view.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def displacement_field(size: int, regions: list[str], vectors: np.ndarray, sigma: float) -> np.ndarray:
    """A smooth (size, size, 2) displacement: a Gaussian bump per region carrying its vector."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    field = np.zeros((size, size, 2), np.float32)
    for name, vector in zip(regions, vectors):
        cx, cy = REGIONS[name]
        bump = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
        field += bump[..., None] * vector[None, None, :]
    return field


def displace(image: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Move image content along ``field`` (backward warping by the field)."""
    size = image.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return cv2.remap(image, xs - field[..., 0], ys - field[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def make_pair(photo: np.ndarray, size: int, rng: np.random.Generator, config: PhotoDemoConfig
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (I_t, I_{t+δ}, moved-region mask) triple."""
    shift = tuple(rng.uniform(-2, 2, size=2))
    frame_t = face_view(photo, size, shift, gain=rng.uniform(0.9, 1.1))
    names = list(rng.choice(list(REGIONS), size=rng.integers(1, 3), replace=False))
    angles = rng.uniform(0, 2 * np.pi, size=len(names))
    lengths = rng.uniform(*config.amplitude, size=len(names))
    vectors = np.stack([np.cos(angles), np.sin(angles)], 1) * lengths[:, None]
    field = displacement_field(size, names, vectors, config.region_sigma)
    moved = np.linalg.norm(field, axis=-1) > 0.25
    return frame_t, displace(frame_t, field), moved


def mass_on_regions(change: torch.Tensor, moved: np.ndarray, patch: int) -> float:
    """Share of the change map's mass (one sample, (N,)) on patches overlapping the moved regions."""
    grid = moved.shape[0] // patch
    coverage = moved.reshape(grid, patch, grid, patch).mean(axis=(1, 3)).reshape(-1)
    values = change.detach().cpu().numpy().astype(np.float64)
    return float((values * coverage).sum() / max(values.sum(), 1e-12))


def draw_maps(model: MicronBERT, pair: tuple[np.ndarray, np.ndarray, np.ndarray], path: Path,
              title: str) -> float:
    """Write the held-out pair's maps as a PNG and return the change-map mass share on moved regions."""
    frame_t, frame_d, moved = pair
    model.eval()
    with torch.no_grad():
        out = _maps(model, frame_t, frame_d)
    change = change_map(out["dma_map"])[0]
    size, patch = frame_t.shape[0], model.config.patch_size
    grid = size // patch
    share = mass_on_regions(change, moved, patch)
    figure = pair_maps_figure(frame_t, frame_d, patch_map_to_image(change.numpy(), grid, grid, size, size),
                              patch_map_to_image(out["saliency"][0].numpy(), grid, grid, size, size),
                              title=f"{title}: {share:.0%} of the change map on the moved regions (outlined)",
                              truth=moved)
    save_figure_atomically(figure, path)
    return share


def _encode_pair(model: MicronBERT, frame_t: np.ndarray, frame_d: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = model.encode(to_model_input(np.stack([frame_d, frame_t])))
    return tokens[:1], tokens[1:]


def _maps(model: MicronBERT, frame_t: np.ndarray, frame_d: np.ndarray) -> dict[str, torch.Tensor]:
    apex_tokens, onset_tokens = _encode_pair(model, frame_t, frame_d)
    _, diagonal = model.dma(apex_tokens, onset_tokens)
    return {"dma_map": diagonal, "saliency": model.saliency(apex_tokens)}


def run_photo_demo(out_dir: str | Path, config: PhotoDemoConfig | None = None) -> dict[str, object]:
    """Pre-train ``tiny`` for ``config.seconds`` and write before/after maps to ``out_dir``."""
    config = config or PhotoDemoConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = create_model("tiny")
    size = model.config.img_size
    photo = face_photo()
    pool = [make_pair(photo, size, rng, config) for _ in range(config.pool_size)]
    held_out = make_pair(photo, size, np.random.default_rng(config.seed + 10_000), config)
    frames_t = to_model_input(np.stack([p[0] for p in pool]))
    frames_d = to_model_input(np.stack([p[1] for p in pool]))

    before = draw_maps(model, held_out, out_dir / "maps_before.png", "before pre-training")
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=0.05)
    generator = torch.Generator().manual_seed(config.seed)
    history, start, step = [], time.monotonic(), 0
    with tqdm(total=round(config.seconds), desc="pre-training tiny", unit="s", mininterval=1.0,
              bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{postfix}]") as bar:
        while (elapsed := time.monotonic() - start) < config.seconds:
            model.train()
            index = torch.randint(len(pool), (config.batch_size,), generator=generator)
            out = model(frames_t[index], frames_d[index], generator=generator)
            optimiser.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimiser.step()
            model.update_teacher()
            step += 1
            history.append({"step": step, "seconds": round(elapsed, 2), "loss": float(out["loss"].detach()),
                            "rec_loss": float(out["rec_loss"].detach())})
            bar.set_postfix_str(f"step {step}, rec loss {history[-1]['rec_loss']:.3f}", refresh=False)
            bar.update(min(elapsed, config.seconds) - bar.n)
    after = draw_maps(model, held_out, out_dir / "maps_after.png", "after pre-training")
    summary = {
        "steps": step, "seconds": round(time.monotonic() - start, 1),
        "rec_loss_first": history[0]["rec_loss"], "rec_loss_last": history[-1]["rec_loss"],
        "mass_on_moved_regions_before": before, "mass_on_moved_regions_after": after,
        "moved_area_share": float(held_out[2].mean()),
        "maps_before": str(out_dir / "maps_before.png"), "maps_after": str(out_dir / "maps_after.png"),
        "config": asdict(config),
    }
    (out_dir / "history.json").write_text(json.dumps(history))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
