"""``micronbert prepare``: read a dataset as received, crop its faces once, write the sample table."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..io import write_json_atomically
from .crops import Clip, CropSettings, prepare_crops
from .datasets import get_reader, load_with_report
from .faces import AlignConfig
from .frames import frame_number
from .table import LoadReport, save_table

TABLE_FILE = "table.csv"
REPORT_FILE = "prepare_report.json"


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


def crop_table_faces(table: pd.DataFrame, cache_dir: Path, settings: CropSettings, workers: int
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
                    scheme: str | None = None, *, crop_faces: bool = True, size: int = 224,
                    backend: str = "opencv", workers: int = 1, missing_apex: str = "estimate",
                    **reader_options: Any) -> PrepareResult:
    """Read ``name`` from ``root``, optionally crop faces to ``size``, and write ``table.csv`` and
    ``prepare_report.json`` into ``out_dir``. Re-running reuses the crop cache. The report names the class scheme
    of the ``label`` column: ``scheme``, or the one the dataset's labels come with (MEGC 2019)."""
    out_dir = Path(out_dir)
    scheme = scheme or get_reader(name).fixed_scheme
    table, load_report = load_with_report(name, root, scheme, missing_apex=missing_apex, **reader_options)
    failed: dict[str, str] = {}
    if crop_faces and len(table):
        settings = CropSettings(align=AlignConfig(output_size=size), backend=backend)
        table, failed = crop_table_faces(table, out_dir / "crops", settings, workers)
    table_path = save_table(table, out_dir / TABLE_FILE)
    report = {
        "dataset": name, "scheme": scheme, "samples": len(table), "cropped": crop_faces, "size": size,
        "dropped": [{"sample": d.key, "reason": d.reason} for d in load_report.dropped],
        "warnings": load_report.warnings, "notes": load_report.notes,
        "failed_clips": [{"clip": k, "error": v} for k, v in failed.items()],
    }
    report_path = write_json_atomically(out_dir / REPORT_FILE, report)
    return PrepareResult(table, table_path, report_path, load_report, failed)
