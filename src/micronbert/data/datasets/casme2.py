"""CASME II reader (DATASETS.md §3).

Layouts: ``CASME2_RAW_selected/sub01/EP02_01f/img46.jpg`` (onset..offset only),
``Cropped/sub01/EP02_01f/reg_img46.jpg`` and ``CASME2-RAW/sub01/EP02_01f/img1.jpg`` (whole
recordings; the onset..offset frames are selected). Annotation: the coding sheet in any known version
(``CASME2-coding-20140508.xlsx``, ``-20190701``, ``-updated``, ``CASME2_label_Ver_2.xls``, CSV
exports), header on row 1 with two blank-header columns; ``/`` apex cells mean missing.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from micronbert.data.datasets.build import LoadOptions, annotation_file, build_table, clip_folder_samples
from micronbert.data.datasets.ids import casme2_subject
from micronbert.data.datasets.paths import find_frames_root, require_dir
from micronbert.data.datasets.sheets import read_sample_sheet
from micronbert.data.table import LoadReport

DATASET = "casme2"
FPS = 200.0
ANNOTATION_PATTERNS = [
    r"casme2[-_ ]?coding.*\.(xlsx|xlsm|xls|csv)",
    r"casme2[-_ ]?label.*\.(xlsx|xlsm|xls|csv)",
    r"casme2(?!.*objective).*\.(xlsx|xlsm|xls|csv)",
]
LAYOUTS: dict[str, tuple[str, ...]] = {
    "raw_selected": ("CASME2_RAW_selected", "CASME2-RAW-selected"),
    "cropped": ("Cropped", "Cropped_original", "CASME2_Cropped", "CASME2-Cropped"),
    "raw": ("CASME2-RAW", "CASME2_RAW", "CASME2RAW"),
}
COLUMNS = {
    "subject": ("Subject",),
    "clip": ("Filename", "File name", "Clip"),
    "onset": ("OnsetFrame", "Onset Frame", "Onset"),
    "apex": ("ApexFrame", "Apex Frame", "Apex"),
    "offset": ("OffsetFrame", "Offset Frame", "Offset"),
    "action_units": ("Action Units", "Action Unit", "AUs", "AU"),
    "emotion": ("Estimated Emotion", "Emotion"),
}


def read(root: str | Path, options: LoadOptions, report: LoadReport, layout: str = "auto") -> pd.DataFrame:
    """CASME II samples under ``root``.

    layout: ``auto`` (first found of raw_selected, cropped, raw, or ``root`` itself when it holds
    ``subNN`` folders), ``raw_selected``, ``cropped`` or ``raw``.
    """
    base = require_dir(root, "CASME II")
    sheet, names = read_sample_sheet(annotation_file(base, options, ANNOTATION_PATTERNS, "CASME II", report), COLUMNS)
    frames_root = (find_frames_root(base, LAYOUTS, layout, "CASME II", r"sub\d+", report) if options.check_frames
                   else None)
    samples = clip_folder_samples(sheet, names, DATASET, report, casme2_subject, frames_root, FPS)
    return build_table(samples, options, report)
