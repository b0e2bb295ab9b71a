"""Pre-training benchmark: pipeline throughput, model FLOP utilisation, and what pre-training learns.

1. Throughput of the whole pipeline (cached frames → DataLoader → device → train step), of the data path
   alone and of the model step alone, for ``tiny`` and ``official-small`` on CPU, and on a GPU when one is
   present (``official-small`` at 224, bf16, batch 256), with model FLOP utilisation against the GPU's
   dense bf16 peak. Data-only throughput far above model-only throughput means loading does not limit
   the GPU.
2. ``tiny`` (or ``--au-model``) pre-trained for a few minutes on synthetic unlabeled video
   (``micronbert.data.synthetic``): reconstruction loss against the copy-the-input baseline (predicting I_{t/s}
   itself), and the share of the mass of the DMA change map, of the relative change map and (with a volatility
   head) of the surprise map inside the true AU regions and inside the moving background of the videos' (onset,
   apex) pairs, and the share of the PoI saliency's mass on the face and on the moving background, before and
   after pre-training, next to the area those regions cover and to what two change maps that need no model
   (pixel change, Farnebäck flow) put there.

    python benchmarks/bench_pretrain.py                      # CPU: modest sizes, ~3 min of pre-training
    python benchmarks/bench_pretrain.py --au-seconds 600 --gpu-batch 256
    python benchmarks/bench_pretrain.py --au-steps 1500 --skip-throughput --set detach_saliency=true
    python benchmarks/bench_pretrain.py --au-steps 1500 --skip-throughput --faces 40 8   # more faces, more held out
    python benchmarks/bench_pretrain.py --au-steps 3000 --skip-throughput --au-model official-small --au-device cuda
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, markdown_table, write_results  # noqa: E402
from micronbert.data.frame_store import build_frame_store  # noqa: E402
from micronbert.data.pretrain_pairs import PretrainDataConfig, build_pretrain_dataset  # noqa: E402
from micronbert.data.synthetic import DEFAULT_AMPLITUDE, SynthConfig, scene_from_ground_truth, write_synthetic_dataset  # noqa: E402
from micronbert.diagnostics import (  # noqa: E402
    maps_region_shares,
    reconstruction_on_dataset,
    reference_change_maps,
    region_mass_shares,
)
from micronbert.model import MicronBERT, create_model, load, named_config  # noqa: E402
from micronbert.train.distributed import DistributedContext  # noqa: E402
from micronbert.train.pretrain import PretrainConfig, Pretrainer, pretrain  # noqa: E402

DEFAULT_FACES = (10, 2)  # training and held-out faces of the AU experiment
FIRST_HELD_OUT = 10  # held-out faces are videos 11, 12, ... whatever the number of training faces

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets.
BF16_PEAK = {"H200": 989.4e12, "H100 PCIe": 756.0e12, "H100": 989.4e12, "A100": 312.0e12, "L40S": 362.1e12}


def bf16_peak(device_name: str) -> float | None:
    for key, peak in BF16_PEAK.items():
        if key in device_name:
            return peak
    return None


# ------------------------------------------------------------------------------------------ throughput
def write_texture_clips(root: Path, clips: int, frames: int, size: int) -> Path:
    """JPEG frame folders of a drifting smooth texture (what the decoder and cache must handle)."""
    rng = np.random.default_rng(0)
    for clip in range(clips):
        folder = root / f"clip{clip}"
        folder.mkdir(parents=True)
        base = cv2.GaussianBlur(rng.integers(0, 256, (size + 32, size + 32, 3), dtype=np.uint8), (15, 15), 4)
        for k in range(frames):
            cv2.imwrite(str(folder / f"img{k + 1}.jpg"), base[k // 8:k // 8 + size, 16:16 + size])
    return root


def throughput(model_name: str, batch: int, steps: int, device: str, workers: int, compile_model: bool,
               work: Path, from_store: bool = False) -> dict[str, object]:
    """samples/s of data only, model step only and the whole pipeline, plus model FLOP utilisation; with
    ``from_store`` the pairs come from a frame store (built here, in 8-pair blocks) instead of the decoded-frame
    cache."""
    data_root = work / f"frames_{model_name}"
    img_size = 224 if model_name != "tiny" else 64
    if not data_root.exists():
        write_texture_clips(data_root, clips=4, frames=max(64, batch // 2 + 16), size=img_size + 32)
    data = {"sources": [str(data_root)], "folder_fps": 200, "cache_dir": str(work / f"cache_{model_name}")}
    if from_store:
        store = work / f"store_{model_name}"
        build_frame_store([str(data_root)], store, img_size, folder_fps=200, workers=min(4, os.cpu_count() or 1))
        data = {"store": str(store), "block": 8}
    config = PretrainConfig.from_dict({
        "model": {"name": model_name},
        "data": {**data, "num_workers": workers},
        "optim": {"warmup_steps": 1},
        "train": {"steps": 10**6, "global_batch": batch, "device": device, "bf16": True, "compile": compile_model,
                  "out_dir": str(work / f"run_{model_name}"), "progress": False}})
    started = time.perf_counter()
    trainer = Pretrainer(config, DistributedContext())
    cache_build_s = time.perf_counter() - started
    dev = trainer.device
    batches = trainer.batches()

    def data_step() -> None:
        images_t, images_d, draws = next(batches)
        trainer.normalise(images_t), trainer.normalise(images_d), draws.to(dev, non_blocking=True)

    data_rate = _rate(data_step, steps * 2, batch, dev)
    images_t, images_d, draws = next(batches)
    frame_t, frame_d = trainer.normalise(images_t), trainer.normalise(images_d)
    model_rate = _rate(lambda: trainer.train_step(frame_t, frame_d, draws), steps, batch, dev)

    def pipeline_step() -> None:
        images_t, images_d, draws = next(batches)
        trainer.train_step(trainer.normalise(images_t), trainer.normalise(images_d), draws)

    pipeline_rate = _rate(pipeline_step, steps, batch, dev)
    flops = train_step_flops(trainer.model, frame_t, frame_d, dev)
    row = {"model": model_name, "device": str(dev), "data": "frame store" if from_store else "frame cache",
           "batch": batch, "img_size": img_size,
           "bf16": dev.type == "cuda", "compile": compile_model, "workers": workers,
           "cache_build_s": round(cache_build_s, 2), "data_samples_per_s": data_rate,
           "model_samples_per_s": model_rate, "pipeline_samples_per_s": pipeline_rate,
           "train_gflop_per_sample": flops / batch / 1e9}
    if dev.type == "cuda":
        peak = bf16_peak(torch.cuda.get_device_name(dev))
        row["bf16_peak_tflops"] = peak / 1e12 if peak else None
        row["model_tflops"] = flops / batch * model_rate / 1e12
        row["model_mfu"] = flops / batch * model_rate / peak if peak else None
    return row


def _rate(step, repeats: int, batch: int, device: torch.device) -> float:
    step()  # warm-up (allocations, autotuning, compilation)
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    _sync(device)
    return repeats * batch / (time.perf_counter() - started)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step_flops(model: MicronBERT, frame_t: torch.Tensor, frame_d: torch.Tensor, device: torch.device) -> float:
    """FLOPs of one forward + backward on the batch, as PyTorch's FLOP counter sees the matrix products."""
    generator = torch.Generator(device=device).manual_seed(0)
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = model(frame_t, frame_d, generator=generator)
        out["loss"].backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


# ------------------------------------------------------------------------------------------ what it learns
def region_shares(model: MicronBERT, pairs: list) -> dict[str, float]:
    """Mean share of the change maps' and of the PoI saliency's mass on the AU regions, the moving background and
    the face, with the share of the image each covers."""
    onsets, apexes = np.stack([p.frame_a for p in pairs]), np.stack([p.frame_b for p in pairs])
    shares = region_mass_shares(model, onsets, apexes, pair_regions(pairs))
    return {"au_mass_share": shares["au"]["change"], "au_area_share": shares["au"]["area"],
            "background_mass_share": shares["background"]["change"],
            "background_area_share": shares["background"]["area"],
            "au_relative_mass_share": shares["au"]["relative_change"],
            "background_relative_mass_share": shares["background"]["relative_change"],
            "saliency_face_share": shares["face"]["saliency"], "face_area_share": shares["face"]["area"],
            "saliency_background_share": shares["background"]["saliency"],
            **({"au_surprise_mass_share": shares["au"]["surprise"],
                "background_surprise_mass_share": shares["background"]["surprise"]}
               if "surprise" in shares["au"] else {})}


def reference_shares(pairs: list, patch: int) -> dict[str, float]:
    """The same shares for the change maps that need no model (pixel change, centred Farnebäck motion)."""
    onsets, apexes = np.stack([p.frame_a for p in pairs]), np.stack([p.frame_b for p in pairs])
    shares = maps_region_shares(reference_change_maps(onsets, apexes, patch), pair_regions(pairs), patch)
    return {f"{region}_{kind}_share": shares[region][kind] for region in ("au", "background")
            for kind in ("pixel_change", "farneback_motion")}


def pair_regions(pairs: list) -> dict[str, list[np.ndarray]]:
    return {"au": [p.au_mask for p in pairs], "background": [p.moving_background for p in pairs],
            "face": [p.face_mask for p in pairs]}


def event_pairs(ground_truth: dict, names: list[str]) -> list:
    """Rendered (onset, apex) pairs, with their AU and moving-background masks, of the named videos."""
    pairs = []
    for entry in ground_truth["videos"]:
        if entry["video"] in names:
            scene = scene_from_ground_truth(ground_truth, entry)
            pairs += [scene.pair(event["onset"], event["apex"]) for event in entry["events"]]
    return pairs


def evaluate(model: MicronBERT, splits: dict[str, tuple[list, object]]) -> dict[str, dict[str, float]]:
    return {name: region_shares(model, pairs) | reconstruction_on_dataset(model, dataset, 64)
            for name, (pairs, dataset) in splits.items()}


def au_experiment(seconds: float, steps: int | None, work: Path, overrides: dict[str, object],
                  amplitude: tuple[float, float] = DEFAULT_AMPLITUDE, model_name: str = "tiny",
                  device: str = "cpu", faces: tuple[int, int] = DEFAULT_FACES) -> dict[str, object]:
    """Pre-train ``model_name`` (with ``overrides`` of its ModelConfig) on ``device`` for ``steps`` steps, or as many
    as fit in about ``seconds``, on synthetic video drawn at the model's input size (``faces[0]`` faces, one video
    each, half as .mp4 and half as JPEG folders; expressions of ``amplitude`` × the face width) and compare maps and
    losses before/after on those videos and on ``faces[1]`` held-out faces (the same faces for any ``faces[0]``)."""
    model_config = named_config(model_name, **overrides)
    size = model_config.img_size
    training, held = faces
    held_indices = range(FIRST_HELD_OUT, FIRST_HELD_OUT + held)
    beyond = held_indices.stop + max(0, training - FIRST_HELD_OUT)
    train_indices = [*range(min(training, FIRST_HELD_OUT)), *range(held_indices.stop, beyond)]
    synth = write_synthetic_dataset(work / "synthetic", SynthConfig(
        seed=0, subjects=0, unlabeled_videos=beyond, unlabeled_frames=300,
        size=size, fps=200, write_mp4=True, expressions_per_second=3.0, amplitude=amplitude),
        workers=min(os.cpu_count() or 1, beyond), progress=True)
    half = training // 2
    train_sources = ([str(synth.videos[i]) for i in train_indices[:half]]
                     + [str(synth.frame_folders[i]) for i in train_indices[half:]])
    held_out = [str(synth.frame_folders[i]) for i in held_indices]
    ground_truth = json.loads(synth.unlabeled_ground_truth_json.read_text())
    data = {"sources": train_sources, "folder_fps": 200, "cache_dir": str(work / "cache_au"),
            "num_workers": min(8, os.cpu_count() or 1) if device.startswith("cuda") else 0}
    splits = {}
    for split, sources in (("training videos", train_sources), ("held-out faces", held_out)):
        dataset, _ = build_pretrain_dataset(PretrainDataConfig(sources=sources, folder_fps=200), size, seed=99)
        splits[split] = (event_pairs(ground_truth, [Path(s).stem for s in sources]), dataset)

    model = {"name": model_name, "overrides": overrides}
    if steps is None:
        probe = PretrainConfig.from_dict({"model": model, "data": data, "train": {
            "steps": 12, "global_batch": 32, "out_dir": str(work / "probe"), "progress": False, "log_every": 2,
            "checkpoint_every": 12, "preview_every": 12, "device": device}})
        step_seconds = pretrain(probe)["seconds"] / 12
        steps = max(50, int(seconds / step_seconds) // 50 * 50)
    config = PretrainConfig.from_dict({"model": model, "data": data,
                                       "optim": {"lr": 1e-3, "min_lr": 1e-5, "warmup_steps": 50},
                                       "train": {"steps": steps, "global_batch": 32, "out_dir": str(work / "au_run"),
                                                 "log_every": math.gcd(50, steps), "checkpoint_every": steps,
                                                 "preview_every": steps,
                                                 "device": device, "progress": True}})
    torch.manual_seed(config.train.seed)
    before = evaluate(create_model(model_name, **overrides).to(device), splits)
    summary = pretrain(config)
    after = evaluate(load(work / "au_run" / "model").to(device), splits)
    areas = {name: {"pairs": len(pairs)} | reference_shares(pairs, model_config.patch_size)
             for name, (pairs, _) in splits.items()}
    return {"model": model_name, "img_size": size, "device": device, "steps": steps,
            "train_seconds": summary["seconds"], "global_batch": 32, "overrides": overrides,
            "amplitude": list(amplitude), "faces": list(faces), "areas": areas,
            "before": before, "after": after}


# ------------------------------------------------------------------------------------------ report
def model_override(value: str) -> tuple[str, object]:
    field_name, sep, raw = value.partition("=")
    if not sep or not field_name:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {value!r}")
    return field_name, yaml.safe_load(raw)


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--au-seconds", type=float, default=180.0, help="pre-training time of the AU experiment")
    parser.add_argument("--au-steps", type=int, help="pre-training steps of the AU experiment (instead of a time; "
                        "use it to compare runs)")
    parser.add_argument("--cpu-steps", type=int, default=4)
    parser.add_argument("--gpu-batch", type=int, default=256)
    parser.add_argument("--gpu-steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model on the GPU")
    parser.add_argument("--store", action="store_true", help="also the throughput rows with the pairs read from a "
                        "frame store (micronbert pretrain-index)")
    parser.add_argument("--skip-au", action="store_true", help="only the throughput rows")
    parser.add_argument("--skip-throughput", action="store_true", help="only the AU experiment")
    parser.add_argument("--skip-cpu", action="store_true", help="no CPU throughput rows (for a short device session)")
    parser.add_argument("--amplitude", type=float, nargs=2, default=DEFAULT_AMPLITUDE, metavar=("LOW", "HIGH"),
                        help="apex displacement of the AU experiment's expressions, fractions of the face width "
                        "(default: the generator's %(default)s)")
    parser.add_argument("--faces", type=positive_int, nargs=2, default=DEFAULT_FACES,
                        metavar=("TRAINING", "HELD_OUT"), help="faces (one video each) the AU experiment pre-trains "
                        "on and holds out (default: %(default)s)")
    parser.add_argument("--au-model", default="tiny", help="model of the AU experiment (default: tiny, 64 px; its "
                        "videos are drawn at the model's input size)")
    parser.add_argument("--au-device", default="cpu", help="device of the AU experiment's pre-training (cpu, cuda)")
    parser.add_argument("--set", dest="overrides", type=model_override, action="append", default=[],
                        metavar="FIELD=VALUE", help="ModelConfig field of the AU experiment's tiny model, the value "
                        "read as YAML, e.g. --set detach_saliency=true (repeatable)")
    args = parser.parse_args()
    if args.skip_cpu and args.skip_au and not torch.cuda.is_available():
        parser.error("--skip-cpu with --skip-au leaves nothing to measure on a machine without a GPU")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_pretrain_") as folder:
        work = Path(folder)
        if not (args.skip_throughput or args.skip_cpu):
            rows.append(throughput("tiny", 32, args.cpu_steps * 4, "cpu", args.workers, False, work))
            if args.store:
                rows.append(throughput("tiny", 32, args.cpu_steps * 4, "cpu", args.workers, False, work, True))
            rows.append(throughput("official-small", 4, args.cpu_steps, "cpu", args.workers, False, work))
        if torch.cuda.is_available() and not args.skip_throughput:
            for from_store in (False, True) if args.store else (False,):
                rows.append(throughput("official-small", args.gpu_batch, args.gpu_steps, "cuda",
                                       max(args.workers, 8), args.compile, work, from_store))
        au = None if args.skip_au else au_experiment(args.au_seconds, args.au_steps, work, dict(args.overrides),
                                                     tuple(args.amplitude), args.au_model, args.au_device,
                                                     tuple(args.faces))
    payload = {"machine": machine_info(), "throughput": rows, "au_experiment": au}
    columns = ["model", "device", "data", "batch", "img_size", "bf16", "workers", "data_samples_per_s",
               "model_samples_per_s", "pipeline_samples_per_s", "train_gflop_per_sample", "model_tflops",
               "model_mfu"]
    markdown = ["# Pre-training benchmark", "", f"Machine: `{json.dumps(payload['machine'])}`"]
    if rows:
        markdown += ["", "## Throughput (samples/s; a sample is one (I_t, I_{t+δ}) pair)", "",
                     markdown_table(rows, columns)]
    if au is not None:
        table = [{"when": when, "pairs from": split, **au[when][split], **au["areas"][split]}
                 for split in au["areas"] for when in ("before", "after")]
        changed = ", ".join(f"{k}={v}" for k, v in au["overrides"].items()) or "none"
        markdown += ["", f"## `{au['model']}` ({au['img_size']} px) pre-trained {au['steps']} steps on {au['device']} "
                     f"({au['train_seconds']:.0f} s, batch 32) on "
                     f"synthetic unlabeled video of {au['faces'][0]} faces, {au['faces'][1]} more held out (model "
                     f"overrides: {changed}; expressions of "
                     "{:.1%}–{:.1%} of the face width)".format(*au["amplitude"]), "",
                     "Change-map mass share on the true AU regions and on the moving background of the "
                     "videos' (onset, apex) pairs, next to the share of patches those regions cover (what a "
                     "uniform map would give); reconstruction loss of 64 pairs against copying I_{t/s}.", "",
                     markdown_table(table, ["when", "pairs from", "pairs", "au_mass_share", "au_area_share",
                                            "background_mass_share", "background_area_share", "rec_loss",
                                            "copy_baseline_loss"]), "",
                     "The same for the relative change map (`MicronBERT.relative_change`: the drop of each patch's "
                     "DMA self-match against the onset compared with itself):", "",
                     markdown_table(table, ["when", "pairs from", "au_relative_mass_share", "au_area_share",
                                            "background_relative_mass_share", "background_area_share"]), "",
                     "PoI saliency mass share on the face and on the moving background, with the face's area:", "",
                     markdown_table(table, ["when", "pairs from", "saliency_face_share", "face_area_share",
                                            "saliency_background_share", "background_area_share"])]
        markdown += ["", "Change maps that need no model, on the same pairs: the mean squared pixel change per patch "
                     "and the length of the Farnebäck flow per patch with its median removed (what any change detector "
                     "sees in these pairs):", "",
                     markdown_table([{"pairs from": split, **au["before"][split], **au["areas"][split]}
                                     for split in au["areas"]],
                                    ["pairs from", "au_pixel_change_share", "au_farneback_motion_share",
                                     "au_area_share",
                                     "background_pixel_change_share", "background_farneback_motion_share",
                                     "background_area_share"])]
        if "au_surprise_mass_share" in table[0]:
            markdown += ["", "The same for the surprise map (`MicronBERT.surprise`: the relative change map weighted "
                         "by the precision the volatility head predicts, METHOD.md §11):", "",
                         markdown_table(table, ["when", "pairs from", "au_surprise_mass_share", "au_area_share",
                                                "background_surprise_mass_share", "background_area_share"])]
    changes = [f"{k}-{v}" for k, v in args.overrides]
    if args.au_model != "tiny":
        changes.append(args.au_model)
    if tuple(args.amplitude) != DEFAULT_AMPLITUDE:
        changes.append("amplitude-{}-{}".format(*args.amplitude))
    if tuple(args.faces) != DEFAULT_FACES:
        changes.append("faces-{}-{}".format(*args.faces))
    name = "_".join(["bench_pretrain"] + changes)  # runs with other settings kept apart
    json_path, md_path = write_results(name, payload, "\n".join(markdown) + "\n")
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
