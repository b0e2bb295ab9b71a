"""Wall time of a CASME II-sized LOSO evaluation in ``frozen`` mode on the CPU.

26 subjects and 247 synthetic CASME II-like samples (``micronbert.data.synthetic``), ``official-small`` at 224,
5 classes, split into encoding (the token cache, run once per distinct frame), head training and evaluation.
Two budgets share one token cache: ``frozen_train: head`` (the DMA as loaded, the head trained on pooled DMA
features, ``--head-epochs``) and ``frozen_train: dma+head`` (METHOD.md §8, ``--dma-epochs``); the second run
must encode no frame again. Target: under 10 minutes on 2 cores. Results go to benchmarks/results/.

    python benchmarks/bench_loso.py                  # the full benchmark
    python benchmarks/bench_loso.py --quick          # tiny model at 64, 6 subjects (a smoke test)
    python benchmarks/bench_loso.py --finetune-epochs 3 --device cuda   # and a LOSO in finetune mode on a GPU
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, markdown_table, write_results  # noqa: E402
from micronbert.config import set_values  # noqa: E402
from micronbert.data.datasets import get_scheme, load  # noqa: E402
from micronbert.data.synthetic import SynthConfig, write_synthetic_dataset  # noqa: E402
from micronbert.evaluation.runner import evaluate  # noqa: E402
from micronbert.model import create_model, save  # noqa: E402
from micronbert.train.finetune import FinetuneConfig  # noqa: E402

SCHEME = "casme2-5class"


def casme2_sized_table(folder: Path, subjects: int, samples: int, size: int) -> pd.DataFrame:
    """Write a synthetic CASME II-like tree and keep ``samples`` rows (dropping clips from the end of the
    subjects in turn, so every subject keeps at least ``samples // subjects`` clips)."""
    per_subject = -(-samples // subjects)
    config = SynthConfig(subjects=subjects, clips_per_subject=per_subject, size=size, unlabeled_videos=0,
                         write_mp4=False, duration_s=(0.05, 0.15))
    dataset = write_synthetic_dataset(folder / "synthetic", config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = load("casme2", dataset.casme2_root, scheme=SCHEME)
    surplus = len(table) - samples
    drop = table.groupby("subject").tail(1).index[:surplus]
    return table.drop(index=drop).reset_index(drop=True)


def run(table: pd.DataFrame, config: FinetuneConfig, out: Path, label: str) -> dict[str, object]:
    started = time.perf_counter()
    result = evaluate(table, "micronbert", config, out, list(get_scheme(SCHEME).classes))
    wall = time.perf_counter() - started
    return {"run": label, "mode": config.train.mode, "frozen_train": config.train.frozen_train,
            "epochs": config.train.epochs, "device": str(config.train.device),
            "folds": result.folds_done, "samples": result.metrics["num_samples"],
            "encode_s": result.timings["prepare_s"], "train_s": result.timings["train_s"],
            "evaluate_s": result.timings["predict_s"], "wall_s": wall,
            "frames_encoded": result.details.get("frames_encoded"),
            "frames_from_cache": result.details.get("frames_from_cache"),
            "uf1": result.metrics["uf1"], "uar": result.metrics["uar"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--head-epochs", type=int, default=20)
    parser.add_argument("--dma-epochs", type=int, default=1)
    parser.add_argument("--finetune-epochs", type=int, default=0,
                        help="also a LOSO in finetune mode (encoder trained) of this many epochs per fold")
    parser.add_argument("--device", default="auto", help="train.device of every run (auto, cpu, cuda)")
    args = parser.parse_args()
    model, size, subjects, samples = ("tiny", 64, 6, 36) if args.quick else ("official-small", 224, 26, 247)
    with tempfile.TemporaryDirectory(prefix="bench_loso_") as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        table = casme2_sized_table(folder, subjects, samples, size)
        synth_s = time.perf_counter() - started
        weights = save(create_model(model), folder / "weights")  # stands in for pre-trained weights
        base = {"model.name": model, "model.weights": str(weights), "train.mode": "frozen",
                "cache.dir": str(folder / "tokens"), "train.batch_size": 16, "train.device": args.device}

        def config(frozen_train: str, epochs: int, mode: str = "frozen") -> FinetuneConfig:
            return FinetuneConfig.from_dict(set_values({}, {**base, "train.frozen_train": frozen_train,
                                                            "train.epochs": epochs, "train.mode": mode}))

        rows = [run(table, config("head", args.head_epochs), folder / "head", "first"),
                run(table, config("dma+head", args.dma_epochs), folder / "dma", "second")]
        if args.finetune_epochs:
            rows.append(run(table, config("dma+head", args.finetune_epochs, "finetune"), folder / "finetune",
                            "finetune"))
    columns = ["run", "mode", "device", "frozen_train", "epochs", "folds", "samples", "encode_s", "train_s",
               "evaluate_s", "wall_s", "frames_encoded", "frames_from_cache", "uf1", "uar"]
    payload = {"machine": machine_info(), "load_average_1_5_15min": os.getloadavg(), "model": model,
               "img_size": size, "subjects": subjects,
               "samples": len(table), "synthesis_s": synth_s, "rows": rows}
    markdown = "\n".join([
        "# bench_loso", "", str(payload["machine"]), "",
        f"LOSO, `frozen` mode, {model} at {size}, {len(table)} synthetic CASME II-like samples, "
        f"{table['subject'].nunique()} subjects, 5 classes; synthetic data written in {synth_s:.1f} s. "
        "encode_s: token cache (encoder once per distinct frame); train_s / evaluate_s: summed over folds. "
        "The second run reuses the first run's token cache. Scores are on random weights: timing only. "
        f"Load average at the end (1/5/15 min): {payload['load_average_1_5_15min']} "
        "(above the core count means other processes shared the CPU).", "",
        markdown_table(rows, columns), ""])
    if not args.quick:
        json_path, md_path = write_results("bench_loso", payload, markdown)
        print(f"wrote {json_path} and {md_path}")
    print(markdown)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
