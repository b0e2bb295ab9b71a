"""``micronbert prepare``: read a dataset as received, crop its faces once, write the sample table; and
:func:`load_samples`, the samples of a recognition run from such a table or straight from a dataset."""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from micronbert.config import Config
from micronbert.data.datasets import get_reader, get_scheme, load_with_report, root_from_arguments
from micronbert.data.datasets import load as load_dataset
from micronbert.data.datasets.schemes import apply_scheme
from micronbert.data.faces import AlignConfig
from micronbert.data.faces.crop_cache import Clip, CropConfig, prepare_crops
from micronbert.data.flow_images import (
    DEFAULT_SCHEME,
    ImageFolderReport,
    read_image_folder,
    write_image_table,
)
from micronbert.data.flow_images import (
    KINDS as IMAGE_KINDS,
)
from micronbert.data.frames import frame_number
from micronbert.data.table import REPORT_FILE, TABLE_FILE, LoadReport, load_table, save_table
from micronbert.io import check_positive_int, read_json_mapping, write_json_atomically

MISSING_APEX = ("estimate", "midpoint", "drop")
IMAGE_FOLDER = "flow-images"  # the `prepare` name of a folder of precomputed flow or apex images
FACE_BACKENDS = ("opencv", "mediapipe", "dlib")



@dataclass(frozen=True)
class PrepareConfig(Config):
    """How ``micronbert prepare`` reads and crops: ``scheme`` of the label column (None: none, or the one the
    dataset's labels come with), ``crop`` faces (False keeps already-cropped frames) to ``size`` pixels with the
    face ``backend`` in ``workers`` processes, and what to do with a sample whose annotation has no apex
    (``missing_apex``: estimate it from the largest change, take the midpoint, or drop the sample); ``reader``: the
    dataset reader's own options (e.g. ``{modality: VIS}`` for SMIC, ``{version: v1}`` for CAS(ME)^3; see
    docs/DATASETS.md). For a folder of precomputed images (``flow-images``): their ``kind`` (``flow`` or ``apex``)
    and ``skip_missing`` (leave out, and report, ground-truth rows without an image instead of stopping)."""

    scheme: str | None = None
    crop: bool = True
    size: int = 224
    backend: str = "opencv"
    workers: int = 1
    missing_apex: str = "estimate"
    reader: dict[str, Any] = field(default_factory=dict)
    kind: str = "flow"
    skip_missing: bool = False

    def __post_init__(self) -> None:
        check_positive_int("size", self.size)
        check_positive_int("workers", self.workers)
        if self.backend not in FACE_BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(FACE_BACKENDS)}, got {self.backend!r}")
        if self.missing_apex not in MISSING_APEX:
            raise ValueError(f"missing_apex must be one of {', '.join(MISSING_APEX)}, got {self.missing_apex!r}")
        if self.kind not in IMAGE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(IMAGE_KINDS)}, got {self.kind!r}")


@dataclass
class PrepareResult:
    """The prepared table, where it was written, and what was dropped or failed."""

    table: pd.DataFrame
    table_path: Path
    report_path: Path
    load_report: LoadReport
    failed_clips: dict[str, str] = field(default_factory=dict)


def clip_id(row: pd.Series) -> str:
    return f"{row['subject']}/{row['clip']}"


def onset_index(frames: list[str], onset: Any) -> int:
    """Position of the onset frame in the clip (0 when the onset is missing or not among the frames)."""
    if pd.isna(onset):
        return 0
    numbers = [frame_number(f) for f in frames]
    return numbers.index(int(onset)) if int(onset) in numbers else 0


def crop_table_faces(table: pd.DataFrame, cache_dir: Path, settings: CropConfig, workers: int
                     ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Align and crop every clip once (from its onset frame) and point the table at the crops.

    Rows of clips whose face could not be cropped are removed; their errors are returned by clip id.
    """
    clips: dict[str, Clip] = {}
    for _, row in table.iterrows():
        key = clip_id(row)
        if key not in clips:
            clips[key] = Clip(key, tuple(row["frames"]), onset_index(list(row["frames"]), row["onset"]))
    report = prepare_crops(list(clips.values()), cache_dir, settings, workers=workers)
    crops = {c.clip_id: [str(p) for p in c.crop_paths] for c in report.clips if c.status != "failed"}
    failed = {c.clip_id: c.error or "failed" for c in report.failed}
    keep = table.apply(lambda r: clip_id(r) in crops, axis=1)
    cropped = table[keep].copy()
    cropped["frames"] = [crops[clip_id(r)] for _, r in cropped.iterrows()]
    return cropped.reset_index(drop=True), failed


def prepare_dataset(name: str, root: str | Path | dict[str, str | Path], out_dir: str | Path,
                    config: PrepareConfig | None = None, **reader_options: Any) -> PrepareResult:
    """Read ``name`` from ``root``, optionally crop faces, and write ``table.csv`` and ``prepare_report.json`` into
    ``out_dir``. Re-running reuses the crop cache. The report names the class scheme of the ``label`` column: the
    configured one, or the one the dataset's labels come with (MEGC 2019)."""
    config = config or PrepareConfig()
    out_dir = Path(out_dir)
    scheme = config.scheme or get_reader(name).fixed_scheme
    table, load_report = load_with_report(name, root, scheme, missing_apex=config.missing_apex,
                                          **{**config.reader, **reader_options})
    failed: dict[str, str] = {}
    if config.crop and len(table):
        settings = CropConfig(align=AlignConfig(output_size=config.size), backend=config.backend)
        table, failed = crop_table_faces(table, out_dir / "crops", settings, config.workers)
    table_path = save_table(table, out_dir / TABLE_FILE)
    report = {
        "dataset": name, "scheme": scheme, "samples": len(table), "cropped": config.crop, "size": config.size,
        "dropped": [{"sample": d.key, "reason": d.reason} for d in load_report.dropped],
        "warnings": load_report.warnings, "notes": load_report.notes,
        "failed_clips": [{"clip": k, "error": v} for k, v in failed.items()],
    }
    report_path = write_json_atomically(out_dir / REPORT_FILE, report)
    return PrepareResult(table, table_path, report_path, load_report, failed)


def prepare_image_folder(roots: Sequence[str], out_dir: str | Path, config: PrepareConfig | None = None
                         ) -> tuple[pd.DataFrame, ImageFolderReport, Path]:
    """``micronbert prepare flow-images``: a folder of precomputed flow (or apex) images, given as one folder and
    optionally ``gt=FILE`` (the MEGC2019 or HTNet-style ground truth), read into the sample table
    (:func:`~micronbert.data.flow_images.read_image_folder`) and written to ``out_dir``; returns the table, the
    report and the table's path."""
    config = config or PrepareConfig()
    folders = [value for value in roots if not value.startswith("gt=")]
    truths = [value.removeprefix("gt=") for value in roots if value.startswith("gt=")]
    if len(folders) != 1 or len(truths) > 1:
        raise ValueError(f"flow-images takes one image folder and at most one gt=FILE, got {list(roots)}")
    table, report = read_image_folder(folders[0], truths[0] if truths else None, kind=config.kind,
                                      scheme=config.scheme or DEFAULT_SCHEME, skip_missing=config.skip_missing)
    table_path, _ = write_image_table(table, report, out_dir)
    return table, report, table_path


def load_samples(table: str | Path | None = None, dataset: str | None = None,
                 root: str | Sequence[str] | None = None, scheme: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The sample table and class names of a recognition run, from either a table ``micronbert prepare`` wrote or a
    dataset read from ``root`` (one folder or ``NAME=PATH`` entries as
    :func:`~micronbert.data.datasets.root_from_arguments` reads them), labelled with ``scheme`` (default: the one
    the table was prepared with, or the dataset's usual one; class names ``0..K-1`` when there is none)."""
    if (table is None) == (dataset is None):
        raise ValueError("give either --table or --dataset (with --root)")
    if table is not None:
        samples = load_table(table)
        prepared_with = scheme_of_prepared_table(table)
        if scheme is None and prepared_with is not None:
            return samples, _scheme_classes(prepared_with, samples, table)
        if scheme is not None:
            samples = apply_scheme(samples, scheme, LoadReport("table"), check_datasets=False)
    else:
        if root is None:
            raise ValueError("--dataset needs --root")
        scheme = scheme or get_reader(dataset).default_scheme
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            samples = load_dataset(dataset, root_from_arguments(root), scheme=scheme)
    if scheme is not None:
        return samples, list(get_scheme(scheme).classes)
    labels = samples["label"].dropna()
    if labels.empty:
        raise ValueError("the samples carry no class labels; choose a class scheme with --scheme")
    return samples, [str(i) for i in range(int(labels.max()) + 1)]


def scheme_of_prepared_table(table: str | Path) -> str | None:
    """The class scheme ``micronbert prepare`` labelled ``table`` with, from the report beside it (None when
    there is no such report or it names no scheme)."""
    report = Path(table).parent / REPORT_FILE
    if not report.is_file():
        return None
    scheme = read_json_mapping(report, "prepare report").get("scheme")
    return scheme if isinstance(scheme, str) else None


def _scheme_classes(scheme: str, samples: pd.DataFrame, table: str | Path) -> list[str]:
    classes = list(get_scheme(scheme).classes)
    labels = samples["label"].dropna()
    if not labels.empty and int(labels.max()) >= len(classes):
        raise ValueError(f"{table}: label {int(labels.max())} does not fit the {len(classes)} classes of {scheme}, "
                         "the scheme its prepare report names")
    return classes
