"""The ``micronbert`` command line: every sub-command's parser, and a short handler that builds the command's
configuration (defaults, then ``--config FILE``, then ``--set key=value``, then the command's own options) and calls
the library."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from .train.device import DEVICES


# ------------------------------------------------------------------------------------------------ helpers
def _add_config_options(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument("--config", help=f"YAML configuration (e.g. {example}); its values are the defaults of the "
                        "options below")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change one setting, e.g. --set optim.lr=1e-3 (repeatable; the value is read as YAML)")


def _given(args: argparse.Namespace, keys: dict[str, str]) -> dict[str, Any]:
    """The command's own options that were given, as dotted configuration keys."""
    return {key: getattr(args, name) for name, key in keys.items() if getattr(args, name, None) is not None}


def _class_list(text: str) -> list[str]:
    from .data.synthetic.actions import CLASSES

    classes = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in classes if name not in CLASSES]
    if unknown or not classes:
        raise argparse.ArgumentTypeError(f"unknown class(es) {unknown or [text]}; choose from {','.join(CLASSES)}")
    return classes


def _add_sample_options(parser: argparse.ArgumentParser) -> None:
    from .data.datasets import ROOT_ARGUMENT_HELP

    parser.add_argument("--table", help="sample table CSV written by `micronbert prepare`")
    parser.add_argument("--dataset", help="dataset name to read directly (with --root)")
    parser.add_argument("--root", action="append", help=ROOT_ARGUMENT_HELP)
    parser.add_argument("--scheme", help="class scheme (default: the one `micronbert prepare` labelled the table "
                        "with, or the dataset's usual one)")
    parser.add_argument("--method", default="micronbert", help="recognition method (`micronbert methods` lists "
                        "them; default: micronbert)")
    parser.add_argument("--weights", help="micronbert checkpoint folder to start from, e.g. the model/ folder "
                        "`micronbert pretrain` wrote (sets model.weights)")
    parser.add_argument("--mode", choices=("finetune", "frozen"), help="sets train.mode")
    parser.add_argument("--device", choices=DEVICES, help="sets train.device (default auto: the GPU when there is one)")
    parser.add_argument("--recipe", choices=("default", "published"),
                        help="sets baselines.recipe: the network baselines' own recipe (published: the paper's)")
    parser.add_argument("--pretrain-on-synthetic", type=int, metavar="N",
                        help="sets train.pretrain_on_synthetic: train on N synthetic AU micro-expressions first "
                        "(MiE-X's protocol)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out unusable samples (and folds) instead of stopping; they are reported")
    _add_config_options(parser, "configs/finetune_tiny.yaml")


def _recognition_config(args: argparse.Namespace) -> Any:
    from .train.finetune import FinetuneConfig

    return FinetuneConfig.from_options(args.config, args.overrides,
                                       _given(args, {"weights": "model.weights", "mode": "train.mode",
                                                     "device": "train.device", "recipe": "baselines.recipe",
                                                     "pretrain_on_synthetic": "train.pretrain_on_synthetic"}))


def _demo_config(args: argparse.Namespace) -> Any:
    from .demo import QUICK, DemoConfig

    return DemoConfig.from_options(args.config, args.overrides, _given(args, {"seed": "seed"}),
                                   base=QUICK if args.quick else None)


def _synth_config(args: argparse.Namespace) -> Any:
    from .data.synthetic import LongVideoConfig, SynthConfig

    if not args.long:
        clip_only = [flag for flag, name in (("--layout", "layout"), ("--duration", "duration")) if
                     getattr(args, name) is not None]
        if clip_only:
            raise ValueError(f"{', '.join(clip_only)} go with --long")
        return SynthConfig.from_options(args.config, args.overrides, _given(args, SYNTH_OPTIONS))
    clip_only = [flag for flag, name in (("--clips-per-subject", "clips_per_subject"), ("--amplitude", "amplitude"),
                                         ("--video-frames", "video_frames")) if getattr(args, name) is not None]
    if clip_only:
        raise ValueError(f"{', '.join(clip_only)} do not apply to --long (see --set micro_amplitude=..., "
                         "--duration, --videos)")
    return LongVideoConfig.from_options(args.config, args.overrides, _given(args, LONG_OPTIONS))


def _prepare_config(args: argparse.Namespace) -> Any:
    from .data.prepare import PrepareConfig

    values = _given(args, {"scheme": "scheme", "size": "size", "backend": "backend", "workers": "workers",
                           "missing_apex": "missing_apex", "kind": "kind"})
    if args.no_crop:
        values["crop"] = False
    return PrepareConfig.from_options(args.config, args.overrides, values)


def _pretrain_config(args: argparse.Namespace) -> Any:
    from .train.pretrain import PretrainConfig

    return PretrainConfig.from_options(args.config, args.overrides)


def _spot_config(args: argparse.Namespace) -> Any:
    from .spotting import SpotConfig

    values = _given(args, {"spotter": "spotter", "weights": "micronbert.model.weights", "device": "micronbert.device",
                           "fps": "track.fps", "backend": "track.backend"})
    return SpotConfig.from_options(args.config, args.overrides, values)


def _spot_eval_config(args: argparse.Namespace) -> Any:
    from .spotting.evaluate import SpotEvalConfig

    names, roots = args.dataset or [], args.root or []
    if len(names) != len(roots):
        raise ValueError(f"give one --root per --dataset (got {len(names)} --dataset and {len(roots)} --root)")
    values = _given(args, {"spotter": "spotters", "weights": "micronbert.model.weights", "device": "micronbert.device",
                           "recognise": "recognise", "backend": "track.backend"})
    if names:
        values["datasets"] = [{"name": name, "root": root} for name, root in zip(names, roots)]
    return SpotEvalConfig.from_options(args.config, args.overrides, values)


def _spot_demo_config(args: argparse.Namespace) -> Any:
    from .spotting.evaluate import SpotDemoConfig

    values = _given(args, {"weights": "evaluation.micronbert.model.weights", "backend": "evaluation.track.backend"})
    return SpotDemoConfig.for_run(args.config, args.overrides, values, quick=args.quick)


def command_config(args: argparse.Namespace) -> Any:
    """The configuration a parsed command line describes (defaults, ``--config``, ``--set``, own options)."""
    builders = {"demo": _demo_config, "synth": _synth_config, "prepare": _prepare_config,
                "pretrain": _pretrain_config, "pretrain-index": _pretrain_config, "finetune": _recognition_config,
                "evaluate": _recognition_config, "spot": _spot_config, "spot-eval": _spot_eval_config,
                "spot-demo": _spot_demo_config}
    if args.command not in builders:
        raise ValueError(f"micronbert {args.command} takes no configuration")
    return builders[args.command](args)


# ------------------------------------------------------------------------------------------------ handlers
def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    result = run_demo(args.out, _demo_config(args), progress=not args.quiet)
    print()
    print(result.report.read_text())
    print(f"report: {result.report} (figures next to it)")
    if args.json:
        print(json.dumps(json.loads((result.out_dir / "results.json").read_text())))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from .data.synthetic import write_long_videos, write_synthetic_dataset

    config = _synth_config(args)
    if args.long:
        long = write_long_videos(args.out, config, progress=not args.quiet)
        print(f"wrote {len(long.video_ids)} long {long.layout} video(s) of {long.n_frames} frames at {long.fps} fps "
              f"under {long.root}, annotated in {long.annotation_sheet.name} (every event in "
              f"{long.ground_truth_json.name})")
        return 0
    dataset = write_synthetic_dataset(args.out, config, workers=args.workers, progress=not args.quiet)
    print(f"wrote {dataset.n_clips} labelled clips under {dataset.casme2_root} and {len(dataset.videos)} "
          f"unlabeled video(s) under {dataset.unlabeled_root}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from .data.datasets import root_from_arguments
    from .data.prepare import IMAGE_FOLDER, prepare_dataset, prepare_image_folder

    if args.dataset == IMAGE_FOLDER:
        table, report, table_path = prepare_image_folder(args.root, args.out, _prepare_config(args))
        print(report.summary())
        print(f"{len(table)} samples -> {table_path} (evaluate with --table {table_path})")
        return 0
    result = prepare_dataset(args.dataset, root_from_arguments(args.root), args.out, _prepare_config(args))
    print(result.load_report.summary())
    if result.failed_clips:
        print(f"{len(result.failed_clips)} clip(s) could not be cropped (see {result.report_path})")
    print(f"{len(result.table)} samples -> {result.table_path}")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from .train.pretrain import pretrain

    summary = pretrain(_pretrain_config(args), resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"pre-trained {summary['steps']} steps in {summary['seconds']:.1f} s; model: {summary['model']}")
    return 0


def _pretrain_index(args: argparse.Namespace) -> int:
    from .data.frame_store import build_frame_store
    from .data.video import read_manifest

    config = _pretrain_config(args)
    data = config.data
    if data.store:
        raise ValueError("data.store is set: the configuration already reads a store; pretrain-index builds one "
                         "from data.sources or data.manifest")
    sources = (read_manifest(data.manifest) if data.manifest else []) + list(data.sources)
    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    report = build_frame_store(sources, args.out, config.model.model_config().img_size, fmt=args.format,
                               workers=args.workers, rank=rank, world_size=world_size, face_crop=data.face_crop,
                               folder_fps=data.folder_fps, on_bad_input=data.on_bad_input)
    print(f"rank {rank}: built {len(report.shards_built)} shard(s), reused {len(report.shards_skipped)}, "
          f"{report.frames} frames of {report.sources} source(s), {len(report.issues)} problem(s) in "
          f"{report.seconds:.1f} s")
    if report.merged:
        print(f"store ready: pre-train from it with --set data.store={args.out} --set data.sources=[]")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from .data.prepare import load_samples
    from .evaluation.runner import finetune

    samples, class_names = load_samples(args.table, args.dataset, args.root, args.scheme)
    out = finetune(samples, _recognition_config(args), args.out, class_names, method=args.method,
                   skip_bad=args.skip_bad, progress=True)
    print(f"wrote {out / 'model'}, {out / 'classes.json'} and {out / 'training_loss.png'}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .data.prepare import load_samples
    from .evaluation.runner import evaluate

    samples, class_names = load_samples(args.table, args.dataset, args.root, args.scheme)
    test_subjects = [s for s in (args.test_subjects or "").split(",") if s]
    result = evaluate(samples, args.method, _recognition_config(args), args.out, class_names,
                      protocol=args.protocol, test_subjects=test_subjects, skip_bad=args.skip_bad,
                      progress=not args.quiet, log=print, select_on_test=args.select_on_test)
    m = result.metrics
    print(f"{args.method} {args.protocol}: UF1 {m['uf1']:.4f}  UAR {m['uar']:.4f}  accuracy {m['accuracy']:.4f} "
          f"over {m['num_samples']} samples; report in {args.out}/results.md")
    if result.skipped_samples or result.skipped_folds:
        print(f"skipped {len(result.skipped_samples)} sample(s) and {len(result.skipped_folds)} fold(s); "
              "see results.md")
    return 0


def _predict_baseline(args: argparse.Namespace, folder: Any) -> int:
    """``predict`` with a baseline saved by ``finetune --method NAME``: a pair, or every row of a sample table."""
    import pandas as pd

    from .data.frames import read_frame
    from .data.table import load_table
    from .evaluation.baseline_methods import load_method, predict_pair, predict_samples

    method = load_method(folder, device=args.device)
    if args.clip or args.batch:
        raise ValueError(f"{folder}: method {method.name} predicts (onset, apex) pairs (--onset/--apex) or the rows "
                         "of a sample table (--table), not raw clips")
    names = method.class_names or [str(i) for i in range(method.num_classes)]
    if args.table:
        table = load_table(args.table)
        probabilities, batch = predict_samples(method, table, skip_bad=True, progress=not args.json)
        rows = table.iloc[batch.rows]
        result = pd.DataFrame({"dataset": rows["dataset"].to_numpy(), "subject": rows["subject"].to_numpy(),
                               "clip": rows["clip"].to_numpy(), "predicted": [names[i] for i in
                                                                               probabilities.argmax(axis=1)]})
        for index, name in enumerate(names):
            result[name] = probabilities[:, index]
        print(result.to_json(orient="records", indent=2) if args.json else result.to_string(index=False))
        for key, reason in batch.skipped:
            print(f"skipped {key}: {reason}", file=sys.stderr)
        return 1 if batch.skipped else 0
    if not (args.onset and args.apex):
        raise ValueError("give --onset and --apex, or --table")
    probabilities = predict_pair(method, read_frame(args.onset), read_frame(args.apex))
    ranked = sorted(zip(names, probabilities.tolist()), key=lambda item: -item[1])
    if args.json:
        print(json.dumps({"method": method.name, "probabilities": dict(ranked), "predicted": ranked[0][0]}))
    else:
        print(f"{args.apex}: {ranked[0][0]}  (" + ", ".join(f"{c} {p:.2f}" for c, p in ranked) + ")")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .evaluation.baseline_methods import METHOD_FILE
    from .predict import load_predictor, predict_batch, predict_clip, predict_pair

    saved = Path(args.model) / "model" if (Path(args.model) / "model" / METHOD_FILE).is_file() else Path(args.model)
    if (saved / METHOD_FILE).is_file():
        return _predict_baseline(args, saved)
    if args.table:
        raise ValueError("--table goes with a baseline saved by `micronbert finetune --method NAME`; for μ-BERT give "
                         "--onset/--apex, --clip or --batch")

    chosen = [bool(args.onset or args.apex), bool(args.clip), bool(args.batch)]
    if sum(chosen) != 1:
        raise ValueError("give exactly one of --onset/--apex, --clip or --batch")
    if chosen[0] and not (args.onset and args.apex):
        raise ValueError("--onset and --apex go together")
    predictor = load_predictor(args.model, device=args.device)
    out_dir = None if args.no_pictures else args.out
    failed: list[tuple[str, str]] = []
    if chosen[0]:
        results = [predict_pair(predictor, args.onset, args.apex, out_dir)]
    elif chosen[1]:
        results = [predict_clip(predictor, args.clip, out_dir, args.face, args.apex_stride)]
    else:
        results, failed = predict_batch(predictor, args.batch, out_dir, progress=not args.json, face=args.face,
                                        apex_stride=args.apex_stride)
    if args.json:
        print(json.dumps({"predictions": [asdict(r) for r in results],
                          "failed": [{"clip": c, "error": e} for c, e in failed]}, indent=2))
        return 1 if failed else 0
    for result in results:
        ranked = sorted(result.probabilities.items(), key=lambda item: -item[1])
        print(f"{result.name}: {result.predicted}  (" + ", ".join(f"{c} {p:.2f}" for c, p in ranked) + ")")
        if result.apex_searched:
            print(f"  apex found automatically: {result.apex_frame} (relative DMA change {result.apex_score:.4f}); "
                  f"onset {result.onset_frame}")
        for span in result.faceless or []:
            print(f"  no face, left out: frames {span['onset']}-{span['offset']} ({span['reason']})")
        if result.figure:
            print(f"  picture: {result.figure}")
    for _, error in failed:
        print(f"failed: {error}", file=sys.stderr)
    return 1 if failed else 0


def _spot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .spotting import recordings_in, spot_recording, write_recording_spot

    config = _spot_config(args)
    if config.spotter == "micronbert" and not config.micronbert.model.weights:
        print("micronbert spot: warning: the micronbert spotter has no pre-trained weights (give --weights); its "
              "signal comes from a randomly initialised model", file=sys.stderr)
    recordings = [recording for path in args.inputs for recording in recordings_in(path)]
    names = [recording.stem if recording.is_file() else recording.name for recording in recordings]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"recordings share a name ({', '.join(repeated)}): their outputs would overwrite each other")
    spotter = config.build_spotter(**_onnx_spotter_model(config))
    reports, failed = [], []
    for recording in recordings:
        try:
            result = spot_recording(recording, spotter, config.track, progress=not args.json)
        except (ValueError, FileNotFoundError) as err:
            if len(recordings) == 1:
                raise
            failed.append({"recording": str(recording), "error": str(err)})
            print(f"micronbert spot: {recording}: {err}", file=sys.stderr)
            continue
        paths = write_recording_spot(result, args.out, figure=not args.no_figure)
        reports.append(result.to_dict() | {"files": {kind: str(path) for kind, path in paths.items()}})
        if not args.json:
            _print_spot(result.to_dict(), paths)
    if args.json:
        print(json.dumps({"recordings": reports, "failed": failed}, indent=2))
    print(f"wrote the intervals of {len(reports)} recording(s) into {Path(args.out)}"
          + (f"; {len(failed)} failed" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


def _onnx_spotter_model(config: Any) -> dict[str, Any]:
    """``model=`` for the micronbert spotter when its weights are a `micronbert export` folder (ONNX Runtime)."""
    weights = config.micronbert.model.weights
    if config.spotter != "micronbert" or not weights:
        return {}
    from .export import OnnxChangeModel, is_onnx_export

    return {"model": OnnxChangeModel(weights)} if is_onnx_export(weights) else {}


def _print_spot(report: dict[str, Any], paths: dict[str, Any]) -> None:
    print(f"{report['video']}: {len(report['intervals'])} interval(s) in {report['frames']} frames "
          f"({report['fps']:.2f} fps)")
    for span in report["faceless"]:
        print(f"  no face: frames {span['onset']}-{span['offset']} ({span['start_s']:.2f}-{span['end_s']:.2f} s): "
              f"{span['reason']}")
    for row in report["intervals"]:
        print(f"  {row['type']:5s} frames {row['onset']}-{row['offset']} (apex {row['apex']}, "
              f"{row['onset_s']:.2f}-{row['offset_s']:.2f} s), score {row['score']:.2f}")
    print("  files: " + ", ".join(str(path) for path in paths.values()))


def _spot_eval(args: argparse.Namespace) -> int:
    from .spotting.evaluate import run_spot_eval

    config = _spot_eval_config(args)
    if not config.datasets:
        raise ValueError("give the datasets to spot: --dataset NAME --root ROOT (repeatable)")
    evaluation = run_spot_eval(config, args.out, progress=not args.quiet)
    print(evaluation.report.read_text())
    print(f"report: {evaluation.report} (scores, predictions and fold settings next to it)")
    return 0


def _spot_demo(args: argparse.Namespace) -> int:
    from .spotting.evaluate import run_spot_demo

    evaluation = run_spot_demo(args.out, _spot_demo_config(args), progress=not args.quiet)
    print(evaluation.report.read_text())
    print(f"report: {evaluation.report} (the synthetic videos are under {evaluation.out_dir / 'data'})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import describe, export_onnx
    from .predict import Predictor, load_predictor

    predictor = load_predictor(args.model)
    if not isinstance(predictor, Predictor):
        raise ValueError(f"{args.model} is an ONNX export already; give the `micronbert finetune` output folder")
    report = export_onnx(predictor.model, args.out, int8=args.int8, opset=args.opset,
                         class_names=predictor.class_names)
    print(describe(report))
    return 0


def _convert_official(args: argparse.Namespace) -> int:
    from .model import convert_official

    out = convert_official(args.source, args.destination)
    print(f"wrote {out} (config.json + model.safetensors)")
    return 0


def _models(args: argparse.Namespace) -> int:
    from .model import CONFIGS

    for name, fields in CONFIGS.items():
        print(f"{name:15s} " + " ".join(f"{k}={v}" for k, v in fields.items()))
    return 0


def _methods(args: argparse.Namespace) -> int:
    from .evaluation.methods import METHODS

    for name, method in METHODS.items():
        print(f"{name:15s} {method.summary}")
    return 0


# ------------------------------------------------------------------------------------------------ parsers
SYNTH_OPTIONS = {"subjects": "subjects", "clips_per_subject": "clips_per_subject", "classes": "classes",
                 "size": "size", "fps": "fps", "amplitude": "amplitude", "nuisance": "nuisance_strength",
                 "videos": "unlabeled_videos", "video_frames": "unlabeled_frames", "seed": "seed"}
LONG_OPTIONS = {"subjects": "subjects", "classes": "classes", "size": "size", "fps": "fps",
                "nuisance": "nuisance_strength", "videos": "videos_per_subject", "seed": "seed", "layout": "layout",
                "duration": "duration_s"}


def _demo_parser(commands: Any) -> None:
    demo = commands.add_parser("demo", help="the whole pipeline on built-in synthetic data, with a report",
                               description="Generate a synthetic labelled dataset and unlabeled video, pre-train "
                               "the tiny model, run leave-one-subject-out for pre-trained μ-BERT, the same network "
                               "untrained, STSTNet, LBP-TOP, the frame difference and the flow grid (several seeds "
                               "each), "
                               "and write a report folder: results table and whether μ-BERT leads the untrained "
                               "network and the frame difference, confusion matrices, training curves, DMA/PoI maps. "
                               "Re-running with the same --out reuses finished stages.")
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    _add_config_options(demo, "configs/demo.yaml")
    demo.add_argument("--quick", action="store_true", help="a tiny run of under a minute that touches every stage "
                      "(the defaults --config and --set then change)")
    demo.add_argument("--seed", type=int, help="seed of the data and the pre-training (sets seed; default 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("--json", action="store_true", help="also print results.json")
    demo.set_defaults(run=_demo)


def _synth_parser(commands: Any) -> None:
    synth = commands.add_parser("synth", help="generate a synthetic micro-expression dataset",
                                description="Write a CASME II-like labelled tree (Cropped/subNN/EPxx_yy/"
                                "reg_imgN.jpg + coding spreadsheet + ground truth) and unlabeled videos (frame "
                                "folders and .mp4) of procedural faces with micro-expressions and nuisances; with "
                                "--long, CAS(ME)^2-like or SAMM-LV-like long videos with micro- and macro-expressions, "
                                "blinks and head movements at known intervals, and their annotation sheet.")
    synth.add_argument("out", help="output folder (must not exist or be empty)")
    synth.add_argument("--long", action="store_true", help="long videos for spotting (micronbert.data.synthetic."
                       "LongVideoConfig fields in --config/--set)")
    synth.add_argument("--layout", choices=("casme_sq", "samm_lv"), help="with --long: the dataset layout "
                       "(default casme_sq, 30 fps; samm_lv is 200 fps)")
    synth.add_argument("--duration", type=float, help="with --long: seconds per video (default 30)")
    _add_config_options(synth, "a YAML of micronbert.data.synthetic.SynthConfig fields")
    synth.add_argument("--subjects", type=int, help="subjects (identities) (default 3)")
    synth.add_argument("--clips-per-subject", type=int, help="labelled clips per subject, classes in turn (default 4)")
    synth.add_argument("--classes", type=_class_list, help="comma-separated objective classes of the labelled clips "
                       "(default: all)")
    synth.add_argument("--size", type=int, help="frame side in pixels, even (default 128)")
    synth.add_argument("--fps", type=int, help="frame rate of clips and videos (default 200)")
    synth.add_argument("--amplitude", type=float, nargs=2, metavar=("MIN", "MAX"),
                       help="apex displacement as a fraction of the face width (default 0.003 0.02)")
    synth.add_argument("--nuisance", type=float, help="nuisance strength, 0 = clean clips (default 1)")
    synth.add_argument("--videos", type=int, help="number of unlabeled videos (default 2); with --long, videos per "
                       "subject (default 1)")
    synth.add_argument("--video-frames", type=int, help="frames per unlabeled video (default 400)")
    synth.add_argument("--seed", type=int, help="the same seed gives the same dataset (default 0)")
    synth.add_argument("--workers", type=int, default=1,
                       help="processes rendering subjects and videos in parallel; the output does not depend on it "
                       "(default 1)")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(run=_synth)


def _prepare_parser(commands: Any) -> None:
    from .data.datasets import ROOT_ARGUMENT_HELP, available
    from .data.prepare import FACE_BACKENDS, IMAGE_FOLDER, MISSING_APEX

    prepare = commands.add_parser("prepare", help="read a dataset as received, crop faces, write the sample table",
                                  description="Read DATASET from its original folders and annotation files, "
                                  "align and crop every clip's faces once (cached, resumable) and write table.csv "
                                  "and prepare_report.json (what was dropped or failed, and why) into --out. "
                                  f"'{IMAGE_FOLDER}' reads a folder of precomputed onset-apex flow images (or apex "
                                  "images with --kind apex): a leave-one-subject-out tree, or a flat folder with "
                                  "--root gt=FILE (the MEGC2019 or HTNet-style ground truth).")
    names = [*available(), IMAGE_FOLDER]
    prepare.add_argument("dataset", choices=names, metavar="dataset", help=", ".join(names))
    prepare.add_argument("--root", required=True, action="append",
                         help=ROOT_ARGUMENT_HELP + f"; for {IMAGE_FOLDER}: the image folder, and gt=FILE")
    prepare.add_argument("--kind", choices=("flow", "apex"), help=f"{IMAGE_FOLDER}: what the images are "
                         "(default flow)")
    prepare.add_argument("--out", required=True, help="output folder for the table and the face crops")
    _add_config_options(prepare, "a YAML of micronbert.data.prepare.PrepareConfig fields")
    prepare.add_argument("--scheme", help="class scheme for the label column, e.g. casme2-5class (default: none)")
    prepare.add_argument("--size", type=int, help="crop side (default 224)")
    prepare.add_argument("--no-crop", action="store_true", help="keep the frames as they are (already cropped)")
    prepare.add_argument("--backend", choices=FACE_BACKENDS,
                         help="face and eye detector: OpenCV cascades (default, no extra), or the landmarks of "
                         "mediapipe or dlib (extras micronbert[mediapipe], micronbert[dlib])")
    prepare.add_argument("--workers", type=int, help="parallel processes for cropping (default 1)")
    prepare.add_argument("--missing-apex", choices=MISSING_APEX,
                         help="what to do where the annotation has no apex (default: estimate it)")
    prepare.set_defaults(run=_prepare)


def _pretrain_parser(commands: Any) -> None:
    pretrain = commands.add_parser(
        "pretrain", help="self-supervised pre-training on unlabeled video",
        description="Pre-train μ-BERT on frame pairs from frame folders, videos or a manifest. Configure with a YAML "
        "file (sections model, data, optim, train) and --set overrides; start several processes with torchrun "
        "(`torchrun --standalone --nproc_per_node=8 -m micronbert pretrain --config ...`).")
    _add_config_options(pretrain, "configs/pretrain_tiny.yaml")
    pretrain.add_argument("--resume", action="store_true", help="continue from the last checkpoint in train.out_dir")
    pretrain.set_defaults(run=_pretrain)


def _pretrain_index_parser(commands: Any) -> None:
    index = commands.add_parser(
        "pretrain-index", help="decode the pre-training sources once into a frame store (for millions of frames)",
        description="Decode, crop and resize the configuration's data.sources (or data.manifest) at the model's "
        "input size into large chunk files with an index and a manifest, in --workers processes; under torchrun "
        "every rank builds its share and rank 0 merges. Resumable: re-running skips finished shards and rebuilds "
        "only changed sources. Pre-train from it with --set data.store=OUT.")
    _add_config_options(index, "configs/pretrain_tiny.yaml")
    index.add_argument("--out", required=True, help="the store's folder")
    index.add_argument("--format", default="raw", choices=("raw", "yuv420", "jpeg"),
                       help="frame storage: raw RGB (exact, default), YUV 4:2:0 (half the size) or JPEG (smallest; "
                       "changes the change maps, see benchmarks/README.md)")
    index.add_argument("--workers", type=int, default=1, help="decoding processes on this machine (default 1)")
    index.set_defaults(run=_pretrain_index)


def _finetune_parser(commands: Any) -> None:
    finetune = commands.add_parser("finetune", help="train a recognition method on all samples of a dataset",
                                   description="Train a recognition method (μ-BERT by default) on every sample of a "
                                   "table or dataset and save the model with its class names.")
    _add_sample_options(finetune)
    finetune.add_argument("--out", required=True, help="output folder (model/, classes.json, training_loss.png)")
    finetune.set_defaults(run=_finetune)


def _evaluate_parser(commands: Any) -> None:
    from .evaluation.folds import PROTOCOLS

    evaluate = commands.add_parser("evaluate", help="cross-validated recognition scores (LOSO, MEGC, LODO, split)",
                                   description="Evaluate a method under a protocol; per-fold predictions are "
                                   "written as they are produced (MEGC log, CSV, JSON) and an interrupted run "
                                   "resumes at the next fold.")
    _add_sample_options(evaluate)
    evaluate.add_argument("--protocol", default="loso", choices=PROTOCOLS,
                          help="loso: leave one subject out; megc2019: the MEGC 2019 composite, subjects "
                               "namespaced by dataset; lodo: leave one dataset out; split: train on all but "
                               "--test-subjects (default: loso)")
    evaluate.add_argument("--test-subjects", help="comma-separated namespaced subjects for --protocol split")
    evaluate.add_argument("--out", required=True, help="report folder (re-use it to resume)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.add_argument("--select-on-test", action="store_true",
                          help="ALSO report what the published pipelines did: the best epoch per held-out subject, "
                          "chosen on its test samples (optimistic; a separate column, never the result)")
    evaluate.set_defaults(run=_evaluate)


def _predict_parser(commands: Any) -> None:
    predict = commands.add_parser("predict", help="classify an onset/apex pair, a clip or a folder of clips",
                                  description="Class probabilities from a fine-tuned model. A clip (frame "
                                  "folder or video) is a raw recording: the face is followed through it and the model "
                                  "reads the aligned face (--face none for clips that are face crops already); the "
                                  "apex is the frame whose relative DMA change against the first frame (the mean of "
                                  "its relative change map) is largest; give the annotated apex with --onset/--apex "
                                  "where there is one (benchmarks/bench_apex.py). Writes a picture per sample into "
                                  "--out.")
    predict.add_argument("--model", required=True, help="`micronbert finetune` output folder (model/ + classes.json), "
                         "μ-BERT or a baseline trained with --method, or a `micronbert export` folder (ONNX)")
    predict.add_argument("--onset", help="onset image file")
    predict.add_argument("--apex", help="apex image file")
    predict.add_argument("--clip", help="a clip: folder of numbered frames or a video file")
    predict.add_argument("--face", choices=("track", "none"), default="track",
                         help="clips: track follows the face through a raw recording and reads aligned face crops "
                         "(frames without a face are reported and left out); none reads frames that are already face "
                         "crops as they are (default track)")
    predict.add_argument("--apex-stride", type=int, default=1, metavar="N",
                         help="clips: score every N-th frame first, then the frames around the best (faster; default "
                         "1, every frame)")
    predict.add_argument("--batch", help="a folder of clips (sub-folders or videos), with a progress bar")
    predict.add_argument("--table", help="with a saved baseline: predict every row of a sample table (`micronbert "
                         "prepare` wrote it)")
    predict.add_argument("--out", default="predictions", help="folder for the pictures (default: predictions)")
    predict.add_argument("--no-pictures", action="store_true", help="do not draw pictures")
    predict.add_argument("--json", action="store_true", help="print the results as JSON")
    predict.add_argument("--device", choices=DEVICES, default="auto", help="where the model runs (default auto: the "
                         "GPU when there is one)")
    predict.set_defaults(run=_predict)


def _spot_parser(commands: Any) -> None:
    from .spotting import available_spotters

    spot = commands.add_parser(
        "spot", help="spot micro- and macro-expressions in raw recordings (MEGC CSV, JSON, timeline)",
        description="Follow the face through each recording (a video file, a folder of numbered frames, or a folder "
        "of them), spot the intervals of micro- and macro-expressions, and write per recording <name>.csv (MEGC "
        "vid,onset,offset,type; frames count from 1), <name>.json (intervals with apex, score and times, frames "
        "without a face, shots) and <name>_timeline.png. Frames without a face are reported and never given to the "
        "spotter; a recording without any face is an error. Thresholds are the spotter's defaults unless set with "
        "--set (e.g. --set flow_roi.micro_p=0.2).")
    spot.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER", help="recordings to spot")
    spot.add_argument("--out", default="spotted", help="output folder (default: spotted)")
    spot.add_argument("--spotter", choices=available_spotters(), help="the spotter (default flow-roi)")
    spot.add_argument("--weights", help="micronbert spotter: a pre-trained model folder (sets "
                      "micronbert.model.weights), or a `micronbert export` folder to run it through ONNX Runtime")
    spot.add_argument("--device", choices=DEVICES, help="micronbert spotter: where the model runs (sets "
                      "micronbert.device)")
    spot.add_argument("--fps", type=float, help="frame rate of frame folders (sets track.fps; videos carry theirs)")
    spot.add_argument("--backend", help="face backend (sets track.backend; default opencv)")
    spot.add_argument("--no-figure", action="store_true", help="do not draw the timelines")
    spot.add_argument("--json", action="store_true", help="print the reports as JSON (and no progress bars)")
    _add_config_options(spot, "a YAML with spotter:, flow_roi:, micronbert:, track: sections")
    spot.set_defaults(run=_spot)


def _spot_eval_parser(commands: Any) -> None:
    from .spotting import available_spotters, available_spotting_datasets

    evaluate = commands.add_parser(
        "spot-eval", help="leave-one-subject-out spotting scores on long-video datasets (MEGC F1, STRS)",
        description="Spot every long video of each dataset (its annotation sheet and frame folders under --root: "
        "CAS(ME)^2 rawpic/sNN/NN_CODE..., SAMM-LV SAMM_longvideos/SSS_V, CAS(ME)^3 .../spNO.k/x/color) leave one "
        "subject out with each --spotter (class durations and thresholds fitted on the other subjects), score per "
        "dataset and pooled (MEGC2020 rule and one-to-one matching) and, with --recognise, spot-then-recognise "
        "(STRS). Writes spotting_scores.csv, predictions_<spotter>.csv (MEGC CSV) and _full.csv, "
        "fold_settings_<spotter>.csv, report.md and results.json into --out. Each video's signal is saved under "
        "--out/signals as it is computed: after an interruption the same command resumes at the first video it had "
        "not finished.")
    evaluate.add_argument("--dataset", action="append", choices=list(available_spotting_datasets()),
                          help="a spotting dataset (repeatable; each with its --root)")
    evaluate.add_argument("--root", action="append", help="the folder holding the dataset's annotation sheet and "
                          "frame folders (one per --dataset, in order)")
    evaluate.add_argument("--spotter", action="append", choices=available_spotters(),
                          help="a spotter (repeatable; default flow-roi)")
    evaluate.add_argument("--weights", help="micronbert spotter: a pre-trained model folder (sets "
                          "micronbert.model.weights; without it the model is randomly initialised)")
    evaluate.add_argument("--device", choices=DEVICES, help="micronbert spotter: where the model runs")
    evaluate.add_argument("--recognise", metavar="METHOD", help="also spot-then-recognise with this recognition "
                          "method (`micronbert methods`; its options under recognition.* with --set)")
    evaluate.add_argument("--backend", help="face backend of the tracking (sets track.backend; default opencv)")
    evaluate.add_argument("--out", required=True, help="report folder")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_config_options(evaluate, "a YAML with datasets:, spotters:, flow_roi:, micronbert:, track:, recognise:, "
                        "recognition:, emotions: sections")
    evaluate.set_defaults(run=_spot_eval)


def _spot_demo_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "spot-demo", help="spotting and spot-then-recognise on synthetic long videos, with a report",
        description="Write small CAS(ME)^2-like and SAMM-LV-like synthetic long videos (frame folders and sheets "
        "the real readers read) into --out/data and run spot-eval on them with the flow-roi and micronbert "
        "spotters and spot-then-recognise with the flowgrid method. The micronbert spotter's model is randomly "
        "initialised unless --weights is given (the report says so). About 2 minutes on 2 CPU cores; --quick "
        "under a minute.")
    demo.add_argument("--out", default="spot_demo_out", help="output folder (default: spot_demo_out); the videos "
                      "are reused when re-run with the same configuration")
    demo.add_argument("--quick", action="store_true", help="tiny videos, a run of under a minute")
    demo.add_argument("--weights", help="a pre-trained model folder for the micronbert spotter")
    demo.add_argument("--backend", help="face backend of the tracking (default opencv)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_config_options(demo, "a YAML with casme_sq:, samm_lv: (LongVideoConfig fields) and evaluation: sections")
    demo.set_defaults(run=_spot_demo)


def _export_parser(commands: Any) -> None:
    export = commands.add_parser(
        "export", help="export a fine-tuned μ-BERT to ONNX for fast CPU inference (needs micronbert[export])",
        description="Write MODEL's recognition, encoder and change graphs as ONNX into OUT with a JSON sidecar, after "
        "checking on held-out synthetic pairs that ONNX Runtime gives the same class and (within a tolerance) the "
        "same logits and change maps as PyTorch; --int8 quantises the encoder's linear layers. `micronbert predict "
        "--model OUT` then runs through ONNX Runtime.")
    export.add_argument("model", help="`micronbert finetune` output folder (model/ + classes.json)")
    export.add_argument("out", help="output folder (new, empty, or an earlier export)")
    export.add_argument("--int8", action="store_true", help="int8 weights for the encoder's linear layers")
    export.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    export.set_defaults(run=_export)


def _small_parsers(commands: Any) -> None:
    convert = commands.add_parser("convert-official", help="convert the published checkpoint to micronbert's format",
                                  description="Read the published Micron-BERT checkpoint (.pth; loaded with "
                                  "weights_only=True) and write a folder with config.json and model.safetensors "
                                  "that micronbert.load() reads.")
    convert.add_argument("source", help="published checkpoint, e.g. CASME2-is224-p8-b16-ep200.pth")
    convert.add_argument("destination", help="output folder")
    convert.set_defaults(run=_convert_official)
    commands.add_parser("models", help="list the named model configurations").set_defaults(run=_models)
    commands.add_parser("methods", help="list the recognition methods").set_defaults(run=_methods)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="micronbert", description="Micron-BERT for facial micro-expressions.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_demo_parser, _synth_parser, _prepare_parser, _pretrain_parser, _pretrain_index_parser,
                _finetune_parser, _evaluate_parser, _predict_parser, _spot_parser, _export_parser,
                _spot_eval_parser, _spot_demo_parser, _small_parsers):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"micronbert {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
