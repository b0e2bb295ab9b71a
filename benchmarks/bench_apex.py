"""How well ``micronbert predict`` finds the apex of a clip: spotting error on synthetic clips with a known apex.

For clips drawn with the demo's settings at several nuisance strengths (``--nuisance``; 0 means none), each clip
is given from its annotated onset to its offset, as a user would pass it to ``micronbert predict --clip``, and
every scorer below picks the frame (after the first) that changed most against the first. Reported per scorer
and model: the mean and median distance in frames to the true apex and the share of clips within 5 frames
(25 ms at the demo's 200 fps), next to what a uniformly random pick would give.

- ``relative DMA change``: :func:`micronbert.predict.apex_scores`, what ``predict`` uses (the mean of the
  relative change map, METHOD.md §5);
- ``1 − mean DMA diagonal``: the mean of the paper's diagonal a against the onset (what ``predict`` used before);
- ``token change``: the mean norm of the encoder token difference per patch (no DMA);
- ``pixel difference``: the mean squared difference of the normalised frames (no model).

Models: the ``tiny`` model of a finished demo (``--demo``) and the same architecture at random initialisation,
with several seeds (``--seeds``; their mean, and the range of the share within 5 frames, are reported), since one
initialisation can differ from another as much as pre-training changes a score.

    micronbert demo --config configs/demo_paper.yaml --out demo_paper_out   # the paper's method alone
    python benchmarks/bench_apex.py --demo demo_paper_out
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, markdown_table, write_results  # noqa: E402
from micronbert.data.frames import frame_number, read_frame  # noqa: E402
from micronbert.data.synthetic import write_synthetic_dataset  # noqa: E402
from micronbert.data.transforms import to_model_input  # noqa: E402
from micronbert.demo import DemoConfig, labelled_table  # noqa: E402
from micronbert.model import MicronBERT, load  # noqa: E402
from micronbert.predict import apex_scores  # noqa: E402

WITHIN = 5  # frames


@dataclasses.dataclass
class Clip:
    frames: np.ndarray  # (n, S, S, 3) uint8, the first is the onset
    apex: int  # index of the true apex


def read_clips(casme2_root: Path, size: int) -> list[Clip]:
    """Every labelled clip of a synthetic CASME II tree, from its onset to its offset, at ``size`` px."""
    table = labelled_table(casme2_root)
    clips = []
    for row in table.itertuples(index=False):
        files = [f for f in row.frames if row.onset <= frame_number(f) <= row.offset]
        numbers = [frame_number(f) for f in files]
        frames = np.stack([read_frame(f) for f in files])
        if frames.shape[1:3] != (size, size):
            raise ValueError(f"{files[0]}: frames of {frames.shape[1:3]}, expected {size}×{size}")
        clips.append(Clip(frames, numbers.index(row.apex)))
    return clips


@torch.no_grad()
def mean_diagonal_scores(model: MicronBERT, frames: np.ndarray) -> np.ndarray:
    tokens = model.encode(to_model_input(frames))
    return (1.0 - model.dma(tokens, tokens[:1].expand_as(tokens))[1].mean(dim=(1, 2))).numpy()


@torch.no_grad()
def token_change_scores(model: MicronBERT, frames: np.ndarray) -> np.ndarray:
    tokens = model.encode(to_model_input(frames))[:, 1:]
    return (tokens - tokens[:1]).norm(dim=-1).mean(dim=1).numpy()


def pixel_difference_scores(frames: np.ndarray) -> np.ndarray:
    images = to_model_input(frames)
    return ((images - images[:1]) ** 2).mean(dim=(1, 2, 3)).numpy()


SCORERS: dict[str, Callable[[MicronBERT, np.ndarray], np.ndarray]] = {
    "relative DMA change": lambda model, frames: apex_scores(model, list(frames)),
    "1 − mean DMA diagonal": mean_diagonal_scores,
    "token change": token_change_scores,
}


def random_model(seed: int, config: DemoConfig) -> MicronBERT:
    torch.manual_seed(seed)
    return config.model.build().eval()


def mean_and_range(results: list[dict[str, float]]) -> dict[str, object]:
    """Mean of each summary over models, and the range of the share within 5 frames (empty for one model)."""
    row: dict[str, object] = {key: float(np.mean([r[key] for r in results])) for key in results[0]}
    shares = [r[f"within_{WITHIN}_frames"] for r in results]
    row[f"within_{WITHIN}_frames_range"] = f"{min(shares):.2f}–{max(shares):.2f}" if len(results) > 1 else ""
    return row


def spotting_errors(clips: list[Clip], score: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """|picked − true apex| in frames per clip, the pick being the highest-scoring frame after the first."""
    return np.array([abs(int(np.argmax(score(clip.frames)[1:])) + 1 - clip.apex) for clip in clips])


def summary(errors: np.ndarray) -> dict[str, float]:
    return {"mean_error_frames": float(errors.mean()), "median_error_frames": float(np.median(errors)),
            f"within_{WITHIN}_frames": float((errors <= WITHIN).mean())}


def chance(clips: list[Clip]) -> dict[str, float]:
    """What a uniformly random pick among frames 1..n−1 gives, in expectation."""
    offsets = [np.abs(np.arange(1, len(clip.frames)) - clip.apex) for clip in clips]
    return {"mean_error_frames": float(np.mean([o.mean() for o in offsets])),
            "median_error_frames": float(np.median(np.concatenate(offsets))),
            f"within_{WITHIN}_frames": float(np.mean([(o <= WITHIN).mean() for o in offsets]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="demo_out", help="a finished `micronbert demo` folder")
    parser.add_argument("--nuisance", type=float, nargs="+", default=[0.0, 0.25, 1.0],
                        help="nuisance strengths of the clips (the demo uses 1)")
    parser.add_argument("--data-seed", type=int, default=5, help="seed of the synthetic clips")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(6)),
                        help="seeds of the random initialisations")
    args = parser.parse_args()
    demo = Path(args.demo)
    if not (demo / "demo.json").is_file():
        parser.error(f"{demo} is not a finished `micronbert demo` folder (no demo.json)")
    config = DemoConfig.from_dict(json.loads((demo / "demo.json").read_text()))
    models = {"random init": [random_model(seed, config) for seed in args.seeds],
              "pre-trained": [load(demo / "pretrain" / "model").eval()]}
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_apex_") as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for strength in args.nuisance:
            synth = dataclasses.replace(config.synth_config(), seed=args.data_seed, nuisance_strength=strength,
                                        unlabeled_videos=1, unlabeled_frames=20)
            root = Path(scratch) / f"nuisance_{strength}"
            write_synthetic_dataset(root, synth)
            clips = read_clips(root / "CASME2", config.size)
            common = {"nuisance": strength, "clips": len(clips),
                      "mean_frames": float(np.mean([len(c.frames) for c in clips]))}
            rows.append({**common, "scorer": "random pick", "model": "", **chance(clips)})
            rows.append({**common, "scorer": "pixel difference", "model": "",
                         **summary(spotting_errors(clips, pixel_difference_scores))})
            for name, variants in models.items():
                for scorer, score in SCORERS.items():
                    results = [summary(spotting_errors(clips, lambda f, m=m, score=score: score(m, f)))
                               for m in variants]
                    rows.append({**common, "scorer": scorer, "model": name, **mean_and_range(results)})
            print(markdown_table(rows[-8:], list(rows[-1])), flush=True)
    columns = ["nuisance", "clips", "mean_frames", "scorer", "model", "mean_error_frames", "median_error_frames",
               f"within_{WITHIN}_frames", f"within_{WITHIN}_frames_range"]
    payload = {"machine": machine_info(), "demo": str(demo), "args": vars(args), "rows": rows,
               "seconds": time.perf_counter() - started}
    markdown = "\n".join([
        "# Apex spotting on synthetic clips", "", f"Machine: `{json.dumps(payload['machine'])}`", "",
        f"Clips of the demo's settings (seed {args.data_seed}), each from its onset to its offset; the pick is the "
        f"frame after the first with the highest score; error = |pick − true apex| in frames (200 fps). Models: "
        f"`{demo}`'s pre-trained `tiny` and random initialisations (seeds {args.seeds}: mean, and range of the "
        f"share within {WITHIN} frames). "
        f"{payload['seconds']:.0f} s.", "", markdown_table(rows, columns)])
    json_path, md_path = write_results("bench_apex", payload, markdown + "\n")
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
