"""Per-epoch UF1 of a baseline's recipe on held-out subjects of a synthetic tuning composite: how the ``default``
recipes of the network baselines were chosen (docs/BASELINES.md), on synthetic data only.

The tuning composite has the shape of the MEGC2019 composite (68 subjects, 442 samples; ``--data``, written once)
but other seeds than the one ``bench_baselines.py`` reports on (each part's seed + 100). For each of ``--splits``
random draws of ``--held-out`` subjects, the method trains on the other subjects with its recipe (changed by
``--set baselines.recipes.<method>.<field>=value``) and its held-out samples are scored after every epoch; the
table gives the pooled UF1 per epoch, averaged over the draws, and the mean of the last five epochs.

    python benchmarks/recipe_curves.py --method offapexnet --set baselines.recipes.offapexnet.lr=5e-4
    python benchmarks/recipe_curves.py --method dual-inception --set baselines.recipes.dual-inception.epochs=20

Results go to ``benchmarks/results/recipe_curves_<method>_cpu_<date>.{json,md}`` (a later run with other settings
on the same day is added to the same files).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine_info, write_results  # noqa: E402

SEED_OFFSET = 100
LAST = 5


def tuning_table(folder: Path) -> Any:
    """The tuning composite under ``folder`` (written unless it is there)."""
    from micronbert.data.synthetic.composite import (
        MEGC2019_PARTS,
        TABLE_NAME,
        read_synthetic_composite,
        write_synthetic_composite,
    )

    if (folder / TABLE_NAME).is_file():
        return read_synthetic_composite(folder)
    parts = tuple(dataclasses.replace(part, seed=part.seed + SEED_OFFSET) for part in MEGC2019_PARTS)
    return write_synthetic_composite(folder, parts)


def epoch_curves(method_name: str, overrides: list[str], table: Any, splits: int, held_out: int) -> dict[str, Any]:
    """Per-epoch pooled UF1 on each split's held-out subjects."""
    from micronbert.config import apply_overrides
    from micronbert.evaluation.methods import get_method
    from micronbert.metrics import pooled_metrics
    from micronbert.train.finetune import FinetuneConfig

    config = FinetuneConfig.from_dict(apply_overrides({}, overrides))
    method = get_method(method_name, config, 3)
    samples = method.read(table, skip_bad=True)
    method.prepare(samples, None)
    subjects = table["subject"].to_numpy()[samples.rows]
    labels = np.asarray(samples.labels)
    curves, seconds = [], []
    for split in range(splits):
        chosen = set(np.random.default_rng(split).choice(sorted(set(subjects)), held_out, replace=False))
        test = np.flatnonzero([subject in chosen for subject in subjects])
        train = np.flatnonzero([subject not in chosen for subject in subjects])
        started = time.perf_counter()
        method.fit(train, watch=test)
        seconds.append(time.perf_counter() - started)
        curves.append([pooled_metrics(labels[test], p.argmax(1), 3)["uf1"] for p in method.epoch_probabilities])
    mean = np.mean(curves, axis=0)
    return {"method": method_name, "overrides": overrides, "recipe": dataclasses.asdict(method.recipe()),
            "splits": splits, "held_out": held_out, "curves": curves, "mean": mean.tolist(),
            "last": float(mean[-1]), "mean_last_5": float(mean[-LAST:].mean()), "train_s_per_split": seconds}


def markdown(runs: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    lines = [f"# recipe_curves: {runs[0]['method']}", "", f"{machine}", "",
             "Pooled UF1 on the held-out subjects of a synthetic tuning composite (seeds + 100 of the benchmark's), "
             "per epoch, averaged over the splits; nothing here is a real subject.", "",
             "| settings | optimiser | lr | batch | epochs | splits x held out | UF1 mean of the last 5 epochs | "
             "UF1 last epoch | training s per split |", "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        recipe = run["recipe"]
        lines.append(f"| {' '.join(run['overrides']) or 'recipe as registered'} | {recipe['optimiser']} | "
                     f"{recipe['lr']:g} | {recipe['batch_size']} | {recipe['epochs']} | {run['splits']} x "
                     f"{run['held_out']} | {run['mean_last_5']:.3f} | {run['last']:.3f} | "
                     f"{np.mean(run['train_s_per_split']):.0f} |")
    for run in runs:
        step = max(1, len(run["mean"]) // 10)
        points = ", ".join(f"{epoch + 1}: {run['mean'][epoch]:.2f}" for epoch in range(0, len(run["mean"]), step))
        lines += ["", f"- {' '.join(run['overrides']) or 'as registered'}: {points}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True, help="a registered network baseline")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a configuration override, e.g. baselines.recipes.offapexnet.lr=5e-4 (repeatable)")
    parser.add_argument("--data", default="/tmp/micronbert_tuning_composite", help="the tuning composite's folder")
    parser.add_argument("--splits", type=int, default=3, help="random draws of held-out subjects")
    parser.add_argument("--held-out", type=int, default=12, help="subjects held out per draw")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    run = epoch_curves(args.method, args.set, tuning_table(Path(args.data)), args.splits, args.held_out)
    machine = machine_info()
    earlier = sorted(RESULTS.glob(f"recipe_curves_{args.method}_cpu_{time.strftime('%Y-%m-%d')}.json"))
    runs = [*(json.loads(earlier[0].read_text())["runs"] if earlier else []), run]
    json_path, md_path = write_results(f"recipe_curves_{args.method}", {"machine": machine, "runs": runs},
                                       markdown(runs, machine))
    print(markdown([run], machine))
    print(f"written: {json_path}, {md_path}")


if __name__ == "__main__":
    main()
