"""Where the class information sits: leave-one-subject-out linear probes on a finished demo's samples.

For the labelled synthetic (onset, apex) pairs of a ``micronbert demo`` folder, a class-balanced logistic
regression (standardised inputs) is trained per fold on each representation below, for the demo's pre-trained
``tiny`` and for the same architecture at random initialisation; UF1 and UAR are pooled over folds.

- ``pixel difference``: grey apex − onset at 16×16 (what the frame-difference baseline sees);
- ``token difference``: encoder tokens of the apex minus those of the onset (N × dim values);
- ``token change per patch``: the norm of that difference per patch (N values);
- ``token cosine per patch``: the cosine similarity of co-located apex and onset tokens (N values), a
  comparison of the same patch without the DMA's softmax over all patches;
- ``DMA diagonal``: the per-patch attention diagonal a (heads × N values), the only path by which the apex's
  content reaches μ-BERT's recognition head besides the saliency;
- ``head input``: the saliency-pooled DMA features the recognition head is trained on (dim values);
- ``head input, uniform pooling`` and ``head input, pooled over the true face``: the same DMA features
  averaged over all patches, or weighted by how much of each patch the synthetic face covers (an oracle PoI),
  to show whether where the head pools limits it.

Also reported per model: the mean of the DMA diagonal a over patches and samples (1/N for a flat softmax),
which shows how much of each patch's content the diagonal lets through to the decoder or the head.

    python benchmarks/bench_probe.py --demo demo_out

The numbers in docs/FINDINGS.md §2–§7 come from a demo of the paper's method alone (``micronbert demo --config
configs/demo_paper.yaml``); with the default demo (motion head, METHOD.md §10) the ``head input`` row is the
centred per-patch flow the classifier reads.
    python benchmarks/bench_probe.py --demo demo_out --weights long=demo_long/pretrain/model
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, markdown_table, write_results  # noqa: E402
from micronbert.baselines.framediff import frame_difference_features  # noqa: E402
from micronbert.data.labelled_pairs import load_labelled_pairs  # noqa: E402
from micronbert.data.synthetic import read_clip_masks  # noqa: E402
from micronbert.data.transforms import to_model_input  # noqa: E402
from micronbert.demo import labelled_table  # noqa: E402
from micronbert.diagnostics import patch_coverage  # noqa: E402
from micronbert.metrics import pooled_metrics  # noqa: E402
from micronbert.model import MicronBERT, create_model, load  # noqa: E402
from micronbert.model.heads import pool_patches  # noqa: E402
from micronbert.train.finetune import head_inputs  # noqa: E402


def loso_probe(features: np.ndarray, labels: np.ndarray, subjects: np.ndarray, classes: int) -> dict[str, float]:
    predictions = np.zeros_like(labels)
    for subject in np.unique(subjects):
        test = subjects == subject
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, class_weight="balanced"))
        predictions[test] = probe.fit(features[~test], labels[~test]).predict(features[test])
    metrics = pooled_metrics(labels, predictions, classes)
    return {"uf1": metrics["uf1"], "uar": metrics["uar"]}


@torch.no_grad()
def representations(model: MicronBERT, onsets: np.ndarray, apexes: np.ndarray, face_cover: torch.Tensor
                    ) -> dict[str, np.ndarray]:
    """Each probed representation of the pairs; ``face_cover`` (n, N): the share of each patch the face covers."""
    model.eval()
    apex_tokens, onset_tokens = model.encode(to_model_input(apexes)), model.encode(to_model_input(onsets))
    apex_patches, onset_patches = apex_tokens[:, 1:], onset_tokens[:, 1:]
    difference = apex_patches - onset_patches
    features, diagonal = model.dma(apex_tokens, onset_tokens)
    face_weights = face_cover / face_cover.mean(dim=1, keepdim=True).clamp_min(1e-6)
    return {"token difference": difference.flatten(1).numpy(),
            "token change per patch": difference.norm(dim=-1).numpy(),
            "token cosine per patch": torch.cosine_similarity(apex_patches, onset_patches, dim=-1).numpy(),
            "DMA diagonal": diagonal.flatten(1).numpy(),
            "head input": head_inputs(model, onset_tokens, apex_tokens).numpy(),
            "head input, uniform pooling": pool_patches(features).numpy(),
            "head input, pooled over the true face": pool_patches(features, face_weights).numpy()}


def named_weights(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {value!r}")
    return name, Path(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="demo_out", help="a finished `micronbert demo` folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the randomly initialised model")
    parser.add_argument("--weights", type=named_weights, action="append", default=[], metavar="NAME=PATH",
                        help="another pre-trained tiny model to probe as well (repeatable)")
    args = parser.parse_args()
    demo = Path(args.demo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = labelled_table(demo / "data" / "CASME2")
    torch.manual_seed(args.seed)
    models = {"random init": create_model("tiny"), "pre-trained": load(demo / "pretrain" / "model")}
    models.update({name: load(path) for name, path in args.weights})
    for model in models.values():
        model.reset_head(2)  # the pooling of the head has no parameters; its classifier is not used
    pairs = load_labelled_pairs(table, models["pre-trained"].config.img_size)
    subjects = table["subject"].to_numpy()[pairs.rows]
    classes = int(pairs.labels.max()) + 1
    faces = read_clip_masks(demo / "data" / "CASME2", table.iloc[pairs.rows], models["pre-trained"].config.img_size,
                            "face_mask")
    face_cover = torch.as_tensor(np.stack([patch_coverage(face, models["pre-trained"].config.patch_size)
                                           for face in faces]), dtype=torch.float32)
    pixel = np.stack([frame_difference_features(o, a) for o, a in zip(pairs.onsets, pairs.apexes)])
    rows = [{"features": "pixel difference", "model": "none", **loso_probe(pixel, pairs.labels, subjects, classes)}]
    gains = []
    for name, model in models.items():
        features_of = representations(model, pairs.onsets, pairs.apexes, face_cover)
        for features, values in features_of.items():
            rows.append({"features": features, "model": name, **loso_probe(values, pairs.labels, subjects, classes)})
        gains.append({"model": name, "mean_dma_diagonal": float(features_of["DMA diagonal"].mean()),
                      "flat_softmax": 1 / model.config.num_patches})
    payload = {"machine": machine_info(), "demo": str(demo), "samples": len(pairs), "subjects": len(set(subjects)),
               "probes": rows, "dma_diagonal": gains}
    markdown = "\n".join(["# Linear probes on the demo's synthetic LOSO", "",
                          f"Machine: `{payload['machine']}`", "",
                          f"{len(pairs)} samples, {len(set(subjects))} subjects, {classes} classes (demo folder "
                          f"`{demo}`); class-balanced logistic regression per LOSO fold; UF1/UAR pooled.", "",
                          markdown_table(rows, ["features", "model", "uf1", "uar"]), "",
                          "Mean DMA diagonal a of the (onset, apex) pairs:", "",
                          markdown_table(gains, ["model", "mean_dma_diagonal", "flat_softmax"])]) + "\n"
    json_path, md_path = write_results("bench_probe", payload, markdown)
    print(markdown)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
