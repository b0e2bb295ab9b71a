"""4DME reader (DATASETS.md §10; most facts unconfirmed).

Annotation ``4DME_Labelling_Micro_release v1.xlsx`` with ``sub_ID``, ``fold_name``, ``Emotion``,
``Onset``, ``Apex``, ``Offset``, ``AUs`` (frame numbers may be floats; AU tokens may carry ``(k)``).
Frames: ``gray_micro/{sub_ID}/{fold_name}/`` (greyscale) or ``gray_micro_crop/``. The frame rate is
not established: fps stays unknown (NaN) unless given.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from micronbert.data.datasets.build import LoadOptions, RawSample, annotation_file, build_table
from micronbert.data.datasets.ids import plain_id
from micronbert.data.datasets.paths import find_child_dir, find_nested_dir, require_dir
from micronbert.data.datasets.sheets import cell_text, column, read_table
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
    sheet_path = annotation_file(base, options, ANNOTATION_PATTERNS, "4DME", report)
    sheet = read_table(sheet_path, [COLUMNS["subject"], COLUMNS["clip"], COLUMNS["onset"], COLUMNS["offset"]])
    names = {key: column(sheet, aliases, required=key != "action_units") for key, aliases in COLUMNS.items()}
    if options.fps is None:
        report.warn("4DME frame rate is not established (DATASETS.md §10); fps left unknown, pass fps= to set it")
    frames_root = None
    if options.check_frames:
        frames_root = find_nested_dir(base, LAYOUTS[layout])
        if frames_root is None:
            raise FileNotFoundError(f"no 4DME {LAYOUTS[layout][0]} folder under {base}; pass check_frames=False to read the sheet alone")
    samples = []
    for index, row in enumerate(sheet.frame.to_dict(orient="records")):
        source = sheet.row_ref(index)
        try:
            subject = plain_id(row[names["subject"]], "4DME subject")
        except ValueError as error:
            report.drop(f"{DATASET} {source}", str(error))
            continue
        clip = cell_text(row[names["clip"]]) or ""
        subject_dir = find_child_dir(frames_root, subject) if frames_root is not None else None
        samples.append(
            RawSample(
                dataset=DATASET,
                subject=subject,
                clip=clip,
                onset=row[names["onset"]],
                apex=row[names["apex"]],
                offset=row[names["offset"]],
                emotion=row[names["emotion"]],
                action_units=row[names["action_units"]] if names["action_units"] else None,
                frames_dir=find_child_dir(subject_dir, clip) if subject_dir is not None and clip else None,
                frames_problem=f"clip folder {subject}/{clip} not found under {frames_root}",
                source=source,
            )
        )
    return build_table(samples, options, report)
