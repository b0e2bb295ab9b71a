"""What a DMA change map that finds the action units would buy recognition: a supervised ceiling.

Issue 3 asks pre-training to make the DMA change map concentrate on the displaced (AU) regions; issue 4 asks the
demo's recognition to beat the random ViT and the frame difference. This benchmark checks whether the first
would give the second, by training the change map *with* the answer: the encoder and the DMA of ``tiny`` are
trained so that −log a_i (the DMA diagonal, heads averaged) separates the patches inside the true AU regions from
the rest (class-agnostic, weighted binary cross-entropy on per-sample centred logits), on (onset, apex) pairs of
fresh synthetic identities drawn with the demo's settings (a labelled set of ``--subjects`` subjects, seed
``--data-seed``; none of the demo's subjects). Two starting points: the demo's pre-trained model and random
initialisation (seed ``--seed``; unlike the demo's random ViT, the same weights serve every training seed).
For each model, before and after, on the demo's own labelled pairs:

- the share of the change map's mass on the true AU regions (next to their area);
- linear probes of ``bench_probe.py`` (token change and cosine per patch, DMA diagonal, the head's input);
- the demo's recognition (frozen encoder and DMA, head trained, LOSO, UF1 pooled; mean and range over seeds).

This is a diagnostic, not a method: the supervision uses the generator's ground truth, which no real video has.

    micronbert demo --config configs/demo_paper.yaml --out demo_paper_out   # the paper's method alone
    python benchmarks/bench_oracle.py --demo demo_paper_out
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_probe import loso_probe, representations  # noqa: E402
from common import machine_info, markdown_table, write_results  # noqa: E402
from micronbert.data.datasets import get_scheme  # noqa: E402
from micronbert.data.labelled_pairs import LabelledPairs, load_labelled_pairs  # noqa: E402
from micronbert.data.synthetic import read_clip_masks, write_synthetic_dataset  # noqa: E402
from micronbert.data.transforms import to_model_input  # noqa: E402
from micronbert.demo import SCHEME, DemoConfig, labelled_table  # noqa: E402
from micronbert.diagnostics import patch_coverage, region_mass_shares  # noqa: E402
from micronbert.evaluation.runner import evaluate  # noqa: E402
from micronbert.model import MicronBERT, load, save  # noqa: E402

AU_PATCH = 0.25  # a patch counts as inside the AU regions when the mask covers this share of it
PROBED = ("token change per patch", "token cosine per patch", "DMA diagonal", "head input")


def labelled_pairs(casme2_root: Path, size: int) -> tuple[LabelledPairs, pd.DataFrame]:
    """The labelled (onset, apex) pairs of a synthetic CASME II tree and their rows of its sample table."""
    table = labelled_table(casme2_root)
    pairs = load_labelled_pairs(table, size)
    return pairs, table.iloc[pairs.rows]


def change_logits(model: MicronBERT, onsets: torch.Tensor, apexes: torch.Tensor) -> torch.Tensor:
    """−log a_i of the (onset, apex) pairs, heads averaged and centred per sample: (B, N)."""
    _, diagonal = model.dma(model.encode(apexes), model.encode(onsets))
    logits = -diagonal.clamp_min(1e-30).log().mean(dim=1)
    return logits - logits.mean(dim=1, keepdim=True)


def train_change_map(model: MicronBERT, pairs: LabelledPairs, masks: list[np.ndarray], steps: int, batch: int,
                     lr: float, seed: int) -> list[float]:
    """Train the encoder and the DMA (and an affine read-out) so that the change map marks the AU patches."""
    coverage = np.stack([patch_coverage(mask, model.config.patch_size) for mask in masks])
    targets = torch.as_tensor(coverage >= AU_PATCH, dtype=torch.float32)
    positive_weight = (1 - targets.mean()) / targets.mean().clamp_min(1e-6)
    onsets, apexes = to_model_input(pairs.onsets), to_model_input(pairs.apexes)
    readout = torch.nn.Linear(1, 1)
    parameters = [*model.backbone.parameters(), *model.att.parameters(), *readout.parameters()]
    optimiser = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.05)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(steps):
        index = torch.randint(len(pairs), (batch,), generator=generator)
        logits = readout(change_logits(model, onsets[index], apexes[index]).unsqueeze(-1)).squeeze(-1)
        loss = F.binary_cross_entropy_with_logits(logits, targets[index], pos_weight=positive_weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def recognition(model: MicronBERT, table: pd.DataFrame, work: Path, name: str, config: DemoConfig) -> list[float]:
    """UF1 of the demo's μ-BERT recognition (its own fine-tuning settings) with ``model``'s weights, per seed."""
    weights = save(model, work / name / "model")
    classes = list(get_scheme(SCHEME).classes)
    return [evaluate(table, "micronbert", config.finetune_config(seed, str(weights), str(work / name / "cache")),
                     work / name / f"seed{seed}", classes).metrics["uf1"] for seed in config.seeds]


def measure(name: str, model: MicronBERT, table: pd.DataFrame, work: Path, config: DemoConfig, pairs: LabelledPairs,
            masks: list[np.ndarray], face_cover: torch.Tensor) -> dict[str, object]:
    """The row of ``model``: change-map share on the AU regions, probes and recognition on the demo's pairs
    (``table``: their rows of the sample table)."""
    subjects = table["subject"].to_numpy()
    share = region_mass_shares(model, pairs.onsets, pairs.apexes, {"au": masks})["au"]
    features = representations(model, pairs.onsets, pairs.apexes, face_cover)
    classes = int(pairs.labels.max()) + 1
    probes = {key: loso_probe(features[key], pairs.labels, subjects, classes)["uf1"] for key in PROBED}
    scores = recognition(model, table, work, name, config)
    return {"model": name, "au_mass": share["change"], "au_area": share["area"], **probes,
            "recognition_uf1": float(np.mean(scores)), "recognition_min": float(np.min(scores)),
            "recognition_max": float(np.max(scores))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="demo_out", help="a finished `micronbert demo` folder")
    parser.add_argument("--steps", type=int, default=1000, help="supervised steps per model")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--subjects", type=int, default=99, help="subjects of the supervision set (10 clips each)")
    parser.add_argument("--data-seed", type=int, default=99, help="seed of the supervision set (not the demo's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation and the batches")
    args = parser.parse_args()
    demo = Path(args.demo)
    config = DemoConfig.from_dict(json.loads((demo / "demo.json").read_text()))
    if config.model.overrides.get("head", "dma") != "dma":
        parser.error(f"{demo}'s recognition head reads the motion head, not the DMA this benchmark supervises; "
                     "run it on a demo made with --config configs/demo_paper.yaml")
    if args.data_seed == config.seed:
        parser.error(f"--data-seed must differ from the demo's seed {config.seed} (fresh identities)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_oracle_") as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        work = Path(scratch)
        synth = dataclasses.replace(config.synth_config(), seed=args.data_seed, subjects=args.subjects,
                                    unlabeled_videos=1, unlabeled_frames=20)
        write_synthetic_dataset(work / "supervision", synth)
        torch.manual_seed(args.seed)
        starts = {"random init": config.model.build(),
                  "pre-trained": load(demo / "pretrain" / "model")}
        for model in starts.values():
            model.reset_head(len(get_scheme(SCHEME).classes))  # the probes pool through the head
        size, patch = config.size, starts["pre-trained"].config.patch_size
        sup_root, demo_root = work / "supervision" / "CASME2", demo / "data" / "CASME2"
        sup_pairs, sup_rows = labelled_pairs(sup_root, size)
        sup_masks = read_clip_masks(sup_root, sup_rows, size, "mask")
        pairs, rows_used = labelled_pairs(demo_root, size)
        masks, faces = (read_clip_masks(demo_root, rows_used, size, column) for column in ("mask", "face_mask"))
        face_cover = torch.as_tensor(np.stack([patch_coverage(face, patch) for face in faces]), dtype=torch.float32)
        rows, curves = [], {}
        for name, model in starts.items():
            rows.append(measure(name, model, rows_used, work, config, pairs, masks, face_cover))
            losses = train_change_map(model, sup_pairs, sup_masks, args.steps, args.batch, args.lr, args.seed)
            curves[name] = {"first": losses[0], "last_50_mean": float(np.mean(losses[-50:]))}
            rows.append(measure(f"{name} + AU supervision", model, rows_used, work, config, pairs, masks,
                                face_cover))
            print(markdown_table(rows[-2:], list(rows[-1])), flush=True)
    payload = {"machine": machine_info(), "demo": str(demo), "args": vars(args), "samples": len(pairs),
               "supervision_samples": len(sup_pairs), "rows": rows, "supervision_loss": curves,
               "seconds": time.perf_counter() - started}
    columns = ["model", "au_mass", "au_area", *PROBED, "recognition_uf1", "recognition_min", "recognition_max"]
    markdown = "\n".join([
        "# A change map trained on the true AU regions (supervised ceiling)", "",
        f"Machine: `{payload['machine']}`", "",
        f"Supervision: {len(sup_pairs)} labelled pairs of {args.subjects} fresh synthetic subjects (seed "
        f"{args.data_seed}, the demo's settings), {args.steps} steps of {args.batch}, lr {args.lr}. Measured on the "
        f"demo's {len(pairs)} labelled pairs (`{demo}`): change-map mass on the AU regions (their area next to "
        "it), LOSO linear-probe UF1 of four representations, and the demo's μ-BERT recognition (head trained, UF1 "
        f"mean and range over seeds {list(config.seeds)}).", "",
        markdown_table(rows, columns), "",
        f"Supervision loss (first step, mean of the last 50): {curves}", "",
        f"Total {payload['seconds']:.0f} s."]) + "\n"
    json_path, md_path = write_results("bench_oracle", payload, markdown)
    print(markdown)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
