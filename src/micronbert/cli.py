"""The ``micronbert`` command line."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .data.synthetic.actions import CLASSES


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


def _demo(args: argparse.Namespace) -> int:
    import dataclasses

    from .train.demo import DemoConfig, run_demo

    if args.config and args.quick:
        raise ValueError("give either --config or --quick")
    config = DemoConfig.from_yaml(args.config) if args.config else DemoConfig.quick() if args.quick else DemoConfig()
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    result = run_demo(args.out, config, progress=not args.quiet)
    print()
    print(result.report.read_text())
    print(f"report: {result.report} (figures next to it)")
    if args.json:
        print(json.dumps(json.loads((result.out_dir / "results.json").read_text())))
    return 0


def _class_list(text: str) -> tuple[str, ...]:
    classes = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in classes if name not in CLASSES]
    if unknown or not classes:
        raise argparse.ArgumentTypeError(f"unknown class(es) {unknown or [text]}; choose from {','.join(CLASSES)}")
    return classes


def _synth(args: argparse.Namespace) -> int:
    from .data.synthetic import SynthConfig, write_synthetic_dataset

    config = SynthConfig(seed=args.seed, subjects=args.subjects, clips_per_subject=args.clips_per_subject,
                         classes=args.classes, size=args.size, fps=args.fps, nuisance_strength=args.nuisance,
                         amplitude=tuple(args.amplitude), unlabeled_videos=args.videos,
                         unlabeled_frames=args.video_frames)
    dataset = write_synthetic_dataset(args.out, config, workers=args.workers, progress=not args.quiet)
    print(f"wrote {dataset.n_clips} labelled clips under {dataset.casme2_root} and {len(dataset.videos)} "
          f"unlabeled video(s) under {dataset.unlabeled_root}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from .data.datasets import root_from_arguments
    from .data.prepare import prepare_dataset

    result = prepare_dataset(args.dataset, root_from_arguments(args.root), args.out, args.scheme,
                             crop_faces=not args.no_crop,
                             size=args.size, backend=args.backend, workers=args.workers,
                             missing_apex=args.missing_apex)
    print(result.load_report.summary())
    if result.failed_clips:
        print(f"{len(result.failed_clips)} clip(s) could not be cropped (see {result.report_path})")
    print(f"{len(result.table)} samples -> {result.table_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="micronbert", description="Micron-BERT for facial micro-expressions.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="the whole pipeline on built-in synthetic data, with a report",
                               description="Generate a synthetic labelled dataset and unlabeled video, pre-train "
                               "the tiny model, run leave-one-subject-out for pre-trained μ-BERT, the same network "
                               "untrained, STSTNet, the frame difference and the flow grid (several seeds each), "
                               "and write a report folder: results table and whether μ-BERT leads the untrained "
                               "network and the frame difference, confusion matrices, training curves, DMA/PoI maps. "
                               "Re-running with the same --out reuses finished stages.")
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--config", help="YAML demo configuration (fields of micronbert.train.demo.DemoConfig)")
    demo.add_argument("--quick", action="store_true", help="a tiny run of under a minute that touches every stage")
    demo.add_argument("--seed", type=int, help="seed of the data and the pre-training (default 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("--json", action="store_true", help="also print results.json")
    demo.set_defaults(run=_demo)

    convert = commands.add_parser("convert-official", help="convert the published checkpoint to micronbert's format",
                                  description="Read the published Micron-BERT checkpoint (.pth; loaded with "
                                  "weights_only=True) and write a folder with config.json and model.safetensors "
                                  "that micronbert.load() reads.")
    convert.add_argument("source", help="published checkpoint, e.g. CASME2-is224-p8-b16-ep200.pth")
    convert.add_argument("destination", help="output folder")
    convert.set_defaults(run=_convert_official)

    synth = commands.add_parser("synth", help="generate a synthetic micro-expression dataset",
                                description="Write a CASME II-like labelled tree (Cropped/subNN/EPxx_yy/"
                                "reg_imgN.jpg + coding spreadsheet + ground truth) and unlabeled videos (frame "
                                "folders and .mp4) of procedural faces with micro-expressions and nuisances.")
    synth.add_argument("out", help="output folder (must not exist or be empty)")
    synth.add_argument("--subjects", type=int, default=3, help="subjects (identities) (default 3)")
    synth.add_argument("--clips-per-subject", type=int, default=4,
                       help="labelled clips per subject, classes in turn (default 4)")
    synth.add_argument("--classes", type=_class_list, default=CLASSES,
                       help=f"comma-separated objective classes of the labelled clips (default {','.join(CLASSES)})")
    synth.add_argument("--size", type=int, default=128, help="frame side in pixels (even)")
    synth.add_argument("--fps", type=int, default=200, help="frame rate of clips and videos (default 200)")
    synth.add_argument("--amplitude", type=float, nargs=2, default=(0.003, 0.02), metavar=("MIN", "MAX"),
                       help="apex displacement as a fraction of the face width (default 0.003 0.02)")
    synth.add_argument("--nuisance", type=float, default=1.0, help="nuisance strength (0 = clean clips)")
    synth.add_argument("--videos", type=int, default=2, help="number of unlabeled videos")
    synth.add_argument("--video-frames", type=int, default=400, help="frames per unlabeled video")
    synth.add_argument("--seed", type=int, default=0, help="the same seed gives the same dataset (default 0)")
    synth.add_argument("--workers", type=int, default=1,
                       help="processes rendering subjects and videos in parallel; the output does not depend on it "
                       "(default 1)")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(run=_synth)

    prepare = commands.add_parser("prepare", help="read a dataset as received, crop faces, write the sample table",
                                  description="Read DATASET from its original folders and annotation files, "
                                  "align and crop every clip's faces once (cached, resumable) and write table.csv "
                                  "and prepare_report.json (what was dropped or failed, and why) into --out.")
    from .data.datasets import ROOT_ARGUMENT_HELP, available

    prepare.add_argument("dataset", choices=available(), metavar="dataset", help=", ".join(available()))
    prepare.add_argument("--root", required=True, action="append", help=ROOT_ARGUMENT_HELP)
    prepare.add_argument("--out", required=True, help="output folder for the table and the face crops")
    prepare.add_argument("--scheme", help="class scheme for the label column, e.g. casme2-5class (default: none)")
    prepare.add_argument("--size", type=int, default=224, help="crop side (default 224)")
    prepare.add_argument("--no-crop", action="store_true", help="keep the frames as they are (already cropped)")
    prepare.add_argument("--backend", default="opencv", choices=("opencv", "mediapipe", "dlib"),
                         help="face and eye detector: OpenCV cascades (default, no extra), or the landmarks of "
                         "mediapipe or dlib (extras micronbert[mediapipe], micronbert[dlib])")
    prepare.add_argument("--workers", type=int, default=1, help="parallel processes for cropping")
    prepare.add_argument("--missing-apex", default="estimate", choices=("estimate", "midpoint", "drop"),
                         help="what to do where the annotation has no apex (default: estimate it)")
    prepare.set_defaults(run=_prepare)

    from .train.finetune import add_finetune_parser
    from .train.predict import add_predict_parser
    from .train.pretrain import add_pretrain_parser
    from .train.protocols import add_evaluate_parser

    add_pretrain_parser(commands)
    add_finetune_parser(commands)
    add_evaluate_parser(commands)
    add_predict_parser(commands)

    models = commands.add_parser("models", help="list the named model configurations")
    models.set_defaults(run=_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"micronbert {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
