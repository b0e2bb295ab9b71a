"""SAMM reader (micro-movement clips, DATASETS.md §4).

Layout ``SAMM/006/006_1_2/006_05562.jpg`` (greyscale; frame-number padding differs between clips,
so only the trailing integer is used); a cropped copy is often called ``SAMM_CROP``. Annotation
``SAMM_Micro_FACS_Codes_v2.xlsx``, whose header row is found by scanning (row 14 in v2, row 1 in the
20181215 variant). Subjects are written as integers and padded to 3 digits.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from micronbert.data.datasets.build import LoadOptions, annotation_file, build_table, clip_folder_samples
from micronbert.data.datasets.ids import samm_subject
from micronbert.data.datasets.paths import find_frames_root, require_dir
from micronbert.data.datasets.sheets import read_sample_sheet
from micronbert.data.table import LoadReport

DATASET = "samm"
FPS = 200.0
ANNOTATION_PATTERNS = [
    r"(?!.*long)samm.*micro.*facs.*\.(xlsx|xlsm|xls|csv)",
    r"(?!.*long)samm.*\.(xlsx|xlsm|xls|csv)",
]
LAYOUTS: dict[str, tuple[str, ...]] = {"original": ("SAMM",), "cropped": ("SAMM_CROP", "SAMM_cropped", "SAMM-CROP")}
COLUMNS = {
    "subject": ("Subject",),
    "clip": ("Filename", "File name"),
    "onset": ("Onset Frame", "OnsetFrame", "Onset"),
    "apex": ("Apex Frame", "ApexFrame", "Apex"),
    "offset": ("Offset Frame", "OffsetFrame", "Offset"),
    "action_units": ("Action Units", "AUs", "AU"),
    "emotion": ("Estimated Emotion", "Emotion"),
}


def read(root: str | Path, options: LoadOptions, report: LoadReport, layout: str = "auto") -> pd.DataFrame:
    """SAMM samples under ``root``. layout: ``auto``, ``original`` (``SAMM``) or ``cropped`` (``SAMM_CROP``)."""
    base = require_dir(root, "SAMM")
    sheet, names = read_sample_sheet(annotation_file(base, options, ANNOTATION_PATTERNS, "SAMM", report), COLUMNS)
    if sheet.header_row != 1:
        report.note(f"SAMM header found on spreadsheet row {sheet.header_row}")
    frames_root = find_frames_root(base, LAYOUTS, layout, "SAMM", r"\d{3}", report) if options.check_frames else None
    samples = clip_folder_samples(sheet, names, DATASET, report, samm_subject, frames_root, FPS)
    return build_table(samples, options, report)
