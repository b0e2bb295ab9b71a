"""CPU inference: eager PyTorch float32, ONNX Runtime float32 and ONNX Runtime int8 side by side, with parity.

The model (``official-small`` at 224, or ``tiny`` with ``--quick``; random weights, seed 0, a 4-class head) is
exported with :func:`micronbert.export.export_onnx` and quantised with :func:`micronbert.export.quantise_export`;
both pass the parity gate on held-out synthetic pairs, whose figures are reported (same predicted class, logit
and change-map differences). Timed, in one run and interleaved (one call of each backend per round, so that the
load of a shared machine falls on all of them alike), with the median over the rounds:

- per-pair latency at batch 1 and throughput at batch ``--batch`` of the recognition graph (what
  ``Predictor.pair`` computes: logits, DMA diagonal, saliency, relative change), the eager side being the same
  module (:class:`micronbert.export.RecognitionGraph`) run by PyTorch;
- the apex search on a synthetic clip with one clear apex: the exhaustive search of ``micronbert.predict`` against
  :func:`micronbert.export.apex_search` (onset encoded once, every ``--stride``-th frame, then refined), eager and
  ONNX int8, with the frames each encodes and the apex each finds.

The load average (``uptime``) is recorded before and after. Results go to benchmarks/results/ (``bench_infer`` or,
with ``--quick``, ``bench_infer_quick``; ``_threads<n>`` added when ``--threads`` is not the number of cores).

    python benchmarks/bench_infer.py            # official-small at 224 (a few minutes on 2 cores)
    python benchmarks/bench_infer.py --quick    # tiny at 64
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import micronbert  # noqa: E402
from common import machine_info, markdown_table, write_results  # noqa: E402
from micronbert.data.synthetic import CLASSES  # noqa: E402
from micronbert.data.transforms import to_model_input  # noqa: E402
from micronbert.export import (  # noqa: E402
    EagerScorer,
    OnnxRecognizer,
    RecognitionGraph,
    apex_search,
    export_onnx,
    parity_pairs,
    quantise_export,
)
from micronbert.predict import apex_scores  # noqa: E402

PARITY_FIGURES = ["pairs", "same_class", "min_margin", "logits", "change", "relative_change", "spotter_change",
                  "mean_change", "saliency"]


def load_average() -> dict[str, object]:
    """The 1, 5 and 15 minute load averages and the ``uptime`` line."""
    one, five, fifteen = os.getloadavg()
    try:
        line = subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        line = ""
    return {"load_1m": one, "load_5m": five, "load_15m": fifteen, "uptime": line}


def interleaved_medians(runners: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per call of each runner over ``rounds`` rounds of one call each (after one warm-up call)."""
    for run in runners.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def clip_with_one_apex(size: int, n_frames: int, seed: int = 0) -> tuple[list[np.ndarray], int]:
    """Frames blending a held-out synthetic onset into its expression's apex and back, peaking at one frame."""
    onsets, apexes = parity_pairs(size, 1, seed=seed + 100)
    onset, peak = onsets[0].astype(np.float32), apexes[0].astype(np.float32)
    apex = int(np.random.default_rng(seed).integers(n_frames // 4, 3 * n_frames // 4))
    steps = np.arange(n_frames)
    weights = np.where(steps <= apex, steps / apex, (n_frames - 1 - steps) / (n_frames - 1 - apex))
    return [np.round(onset + w * (peak - onset)).astype(np.uint8) for w in weights], apex


def recognition_rows(model: micronbert.MicronBERT, recognizers: dict[str, OnnxRecognizer], batch: int,
                     rounds: dict[int, int]) -> list[dict[str, object]]:
    size = model.config.img_size
    onset_u8, apex_u8 = parity_pairs(size, batch, seed=1)  # timing inputs, not the parity set
    graph = RecognitionGraph(model)
    rows = []
    for batch_size, repeats in rounds.items():
        onset, apex = to_model_input(onset_u8[:batch_size]), to_model_input(apex_u8[:batch_size])
        onset_np, apex_np = onset.numpy(), apex.numpy()

        def eager(onset=onset, apex=apex):
            with torch.no_grad():
                return graph(onset, apex)

        runners: dict[str, Callable[[], object]] = {"eager float32": eager}
        for name, recognizer in recognizers.items():
            runners[name] = lambda r=recognizer, o=onset_np, a=apex_np: r.recognize(o, a)
        seconds = interleaved_medians(runners, repeats)
        for name, value in seconds.items():
            rows.append({"backend": name, "batch": batch_size, "rounds": repeats, "ms_per_call": 1e3 * value,
                         "ms_per_pair": 1e3 * value / batch_size, "pairs_per_s": batch_size / value,
                         "speedup_vs_eager": seconds["eager float32"] / value})
            print(rows[-1], flush=True)
    return rows


def clip_rows(model: micronbert.MicronBERT, int8: OnnxRecognizer, n_frames: int, stride: int,
              rounds: int) -> list[dict[str, object]]:
    frames, true_apex = clip_with_one_apex(model.config.img_size, n_frames)
    scorer = EagerScorer(model)
    found: dict[str, tuple[int, int]] = {}

    def record(name: str, apex: int, scores: np.ndarray) -> None:
        # frames scored, frame 0 standing for the onset's own encoding (the exhaustive search also encodes frame 0)
        found[name] = (apex, int(np.sum(~np.isnan(scores))) + (name == exhaustive_name))

    exhaustive_name = "eager exhaustive (predict.apex_scores)"
    runners = {
        exhaustive_name: lambda: record(exhaustive_name, *_argmax_and_scores(apex_scores(model, frames))),
        f"eager strided (stride {stride})":
            lambda: record(f"eager strided (stride {stride})", *apex_search(scorer, frames, stride=stride)),
        f"onnx int8 strided (stride {stride})":
            lambda: record(f"onnx int8 strided (stride {stride})", *int8.find_apex(frames, stride=stride)),
    }
    seconds = interleaved_medians(runners, rounds)
    exhaustive = exhaustive_name
    rows = []
    for name, value in seconds.items():
        apex, encoded = found[name]
        rows.append({"search": name, "frames": n_frames, "frames_encoded": encoded, "seconds": value,
                     "speedup_vs_exhaustive": seconds[exhaustive] / value, "apex_found": apex, "true_apex": true_apex,
                     "same_as_exhaustive": apex == found[exhaustive][0]})
        print(rows[-1], flush=True)
    return rows


def _argmax_and_scores(scores: np.ndarray) -> tuple[int, np.ndarray]:
    return int(np.argmax(scores[1:]) + 1), scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the tiny model at 64, fewer rounds")
    parser.add_argument("--rounds", type=int, help="rounds at batch 1 (default 9, quick 5); half at --batch, min 3")
    parser.add_argument("--batch", type=int, default=16, help="batch of the throughput rows (default 16)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads of PyTorch and ONNX Runtime alike (default: all cores)")
    parser.add_argument("--pairs", type=int, default=24, help="held-out synthetic pairs of the parity gate")
    parser.add_argument("--clip-frames", type=int, default=40, help="frames of the apex-search clip")
    parser.add_argument("--stride", type=int, default=4, help="stride of the apex search")
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else 9)
    torch.set_num_threads(args.threads)
    name = "tiny" if args.quick else "official-small"
    torch.manual_seed(0)
    model = micronbert.create_model(name, agreement="off", num_classes=len(CLASSES), head_dropout=0.0).eval()
    load = {"start": load_average()}
    with tempfile.TemporaryDirectory() as folder:
        float32 = export_onnx(model, Path(folder) / "float32", class_names=list(CLASSES), parity_pairs=args.pairs,
                              threads=args.threads)
        int8 = quantise_export(model, float32.folder, Path(folder) / "int8", parity_pairs=args.pairs,
                               threads=args.threads)
        exports = {"onnx float32": float32, "onnx int8": int8}
        for report in exports.values():
            print(micronbert.export.describe(report), flush=True)
        load["after_export"] = load_average()
        recognizers = {label: OnnxRecognizer(report.folder, threads=args.threads) for label, report in exports.items()}
        recognition = recognition_rows(model, recognizers, args.batch, {1: rounds, args.batch: max(3, rounds // 2)})
        clip = clip_rows(model, recognizers["onnx int8"], args.clip_frames, args.stride, max(3, rounds // 3))
    load["end"] = load_average()
    parity = [{"backend": label, **{k: getattr(r.parity, k) for k in PARITY_FIGURES},
               "tolerance_logits": r.parity.tolerance.logits, "tolerance_change": r.parity.tolerance.change,
               "quantised_layers": r.quantised_layers, "export_seconds": r.seconds} for label, r in exports.items()]
    machine = machine_info()
    machine["onnxruntime_threads"] = args.threads
    payload = {"machine": machine, "model": name, "img_size": model.config.img_size, "load": load,
               "parity": parity, "recognition": recognition, "apex_search": clip}
    markdown = _markdown(name, model.config.img_size, machine, load, parity, recognition, clip)
    label = "bench_infer_quick" if args.quick else "bench_infer"
    paths = write_results(label if args.threads == os.cpu_count() else f"{label}_threads{args.threads}", payload,
                          markdown)
    print(markdown)
    print("wrote", *paths)


def _markdown(name: str, size: int, machine: dict[str, object], load: dict[str, dict[str, object]],
              parity: list[dict[str, object]], recognition: list[dict[str, object]],
              clip: list[dict[str, object]]) -> str:
    loads = "; ".join(f"{when}: {v['load_1m']:.2f} / {v['load_5m']:.2f} / {v['load_15m']:.2f}"
                      for when, v in load.items())
    return (f"# bench_infer: {name} at {size}² on the CPU\n\n{machine}\n\nLoad average (1 / 5 / 15 min), a shared "
            f"machine: {loads}.\n\nRandom weights (seed 0), 4-class head. Timings are medians of interleaved rounds "
            "(one call of each backend per round).\n\n## Parity gate (held-out synthetic pairs)\n\n"
            "logits: max |Δ| / max(1, max |logit|); change, relative_change, spotter_change: max |Δ| of maps in "
            "[0, 1]; saliency: max |Δ| (mean 1), not gated.\n\n"
            + markdown_table(parity, ["backend", *PARITY_FIGURES, "tolerance_logits", "tolerance_change",
                                      "quantised_layers", "export_seconds"])
            + "\n\n## Recognition (onset, apex) → logits, DMA diagonal, saliency, relative change\n\n"
            + markdown_table(recognition, ["backend", "batch", "rounds", "ms_per_call", "ms_per_pair", "pairs_per_s",
                                           "speedup_vs_eager"])
            + "\n\n## Apex search on a clip with one clear apex\n\n"
            + markdown_table(clip, ["search", "frames", "frames_encoded", "seconds", "speedup_vs_exhaustive",
                                    "apex_found", "true_apex", "same_as_exhaustive"]) + "\n")


if __name__ == "__main__":
    main()
