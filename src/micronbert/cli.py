"""The ``micronbert`` command line."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


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
    from .train.photo_demo import PhotoDemoConfig, run_photo_demo

    summary = run_photo_demo(args.out, PhotoDemoConfig(seconds=args.seconds, seed=args.seed))
    print(f"pre-trained tiny for {summary['steps']} steps ({summary['seconds']} s): reconstruction loss "
          f"{summary['rec_loss_first']:.3f} -> {summary['rec_loss_last']:.3f}")
    print(f"share of the held-out pair's DMA change map on the displaced regions "
          f"(they cover {summary['moved_area_share']:.0%} of the image): "
          f"{summary['mass_on_moved_regions_before']:.1%} before, {summary['mass_on_moved_regions_after']:.1%} after")
    print(f"maps: {summary['maps_before']}")
    print(f"      {summary['maps_after']}")
    if args.json:
        print(json.dumps(summary))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="micronbert", description="Micron-BERT for facial micro-expressions.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="pre-train the tiny model on built-in data and draw its maps",
                               description="Pre-train the tiny model for about a minute on frame pairs made "
                               "from a real photo with displaced facial regions, and write the DMA change map "
                               "and PoI saliency of a held-out pair before and after training.")
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--seconds", type=float, default=60.0, help="training time (default: 60)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--json", action="store_true", help="also print the summary as JSON")
    demo.set_defaults(run=_demo)

    convert = commands.add_parser("convert-official", help="convert the published checkpoint to micronbert's format",
                                  description="Read the published Micron-BERT checkpoint (.pth; loaded with "
                                  "weights_only=True) and write a folder with config.json and model.safetensors "
                                  "that micronbert.load() reads.")
    convert.add_argument("source", help="published checkpoint, e.g. CASME2-is224-p8-b16-ep200.pth")
    convert.add_argument("destination", help="output folder")
    convert.set_defaults(run=_convert_official)

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
