"""4DME reader (DATASETS.md §10; most facts unconfirmed).

Annotation ``4DME_Labelling_Micro_release v1.xlsx`` with ``sub_ID``, ``fold_name``, ``Emotion``,
``Onset``, ``Apex``, ``Offset``, ``AUs`` (frame numbers may be floats; AU tokens may carry ``(k)``).
Frames: ``gray_micro/{sub_ID}/{fold_name}/`` (greyscale) or ``gray_micro_crop/``. The frame rate is
not established: fps stays unknown (NaN) unless given.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from micronbert.data.datasets.build import LoadOptions, annotation_file, build_table, clip_folder_samples
from micronbert.data.datasets.ids import plain_id
from micronbert.data.datasets.paths import find_nested_dir, require_dir
from micronbert.data.datasets.sheets import read_sample_sheet
from micronbert.data.table import LoadReport

DATASET = "4dme"
ANNOTATION_PATTERNS = [
    r"4dme_labelling_micro_release(?!.*extras).*\.(xlsx|xlsm|xls|csv)",
    r"4dme(?!.*extras).*micro.*\.(xlsx|xlsm|xls|csv)",
]
LAYOUTS = {"original": ("gray_micro",), "cropped": ("gray_micro_crop",)}
COLUMNS = {
    "subject": ("sub_ID", "Subject"),
    "clip": ("fold_name", "Filename"),
    "onset": ("Onset",),
    "apex": ("Apex",),
    "offset": ("Offset",),
    "action_units": ("AUs", "AU", "Action Units"),
    "emotion": ("Emotion",),
}


def read(root: str | Path, options: LoadOptions, report: LoadReport, layout: str = "original") -> pd.DataFrame:
    """4DME micro-expression samples under ``root``. layout: ``original`` (gray_micro) or ``cropped``."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown 4DME layout {layout!r}; choose one of {list(LAYOUTS)}")
    base = require_dir(root, "4DME")
    sheet, names = read_sample_sheet(annotation_file(base, options, ANNOTATION_PATTERNS, "4DME", report), COLUMNS)
    if options.fps is None:
        report.warn("4DME frame rate is not established (DATASETS.md §10); fps left unknown, pass fps= to set it")
    frames_root = None
    if options.check_frames:
        frames_root = find_nested_dir(base, LAYOUTS[layout])
        if frames_root is None:
            raise FileNotFoundError(f"no 4DME {LAYOUTS[layout][0]} folder under {base}; pass check_frames=False to "
                                    "read the sheet alone")
    samples = clip_folder_samples(sheet, names, DATASET, report, _subject, frames_root, fps=None)
    return build_table(samples, options, report)


def _subject(value: object) -> str:
    return plain_id(value, "4DME subject")
