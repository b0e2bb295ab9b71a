"""SAMM reader (micro-movement clips, DATASETS.md §4).

Layout ``SAMM/006/006_1_2/006_05562.jpg`` (greyscale; frame-number padding differs between clips,
so only the trailing integer is used); a cropped copy is often called ``SAMM_CROP``. Annotation
``SAMM_Micro_FACS_Codes_v2.xlsx``, whose header row is found by scanning (row 14 in v2, row 1 in the
20181215 variant). Subjects are written as integers and padded to 3 digits.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from micronbert.data.datasets.build import LoadOptions, RawSample, annotation_file, build_table
from micronbert.data.datasets.ids import samm_subject
from micronbert.data.datasets.paths import find_child_dir, find_nested_dir, has_subdirs_matching, require_dir
from micronbert.data.datasets.sheets import cell_text, column, read_table
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
    sheet_path = annotation_file(base, options, ANNOTATION_PATTERNS, "SAMM", report)
    sheet = read_table(sheet_path, [COLUMNS["subject"], COLUMNS["clip"], COLUMNS["onset"], COLUMNS["offset"]])
    if sheet.header_row != 1:
        report.note(f"SAMM header found on spreadsheet row {sheet.header_row}")
    names = {key: column(sheet, aliases, required=key != "action_units") for key, aliases in COLUMNS.items()}
    frames_root = _frames_root(base, layout, report) if options.check_frames else None
    samples = []
    for index, row in enumerate(sheet.frame.to_dict(orient="records")):
        source = sheet.row_ref(index)
        try:
            subject = samm_subject(row[names["subject"]])
        except ValueError as error:
            report.drop(f"{DATASET} {source}", str(error))
            continue
        clip = cell_text(row[names["clip"]]) or ""
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
                fps=FPS,
                frames_dir=_clip_dir(frames_root, subject, clip),
                frames_problem=f"clip folder {subject}/{clip} not found under {frames_root}",
                source=source,
            )
        )
    return build_table(samples, options, report)


def _frames_root(base: Path, layout: str, report: LoadReport) -> Path:
    if layout != "auto" and layout not in LAYOUTS:
        raise ValueError(f"unknown SAMM layout {layout!r}; choose 'auto' or one of {sorted(LAYOUTS)}")
    chosen = list(LAYOUTS) if layout == "auto" else [layout]
    for name in chosen:
        found = find_nested_dir(base, LAYOUTS[name])
        if found is not None:
            report.note(f"SAMM frames: {name} layout at {found}")
            return found
    if layout == "auto" and has_subdirs_matching(base, r"\d{3}"):
        report.note(f"SAMM frames: subject folders directly under {base}")
        return base
    raise FileNotFoundError(
        f"no SAMM frame folder ({', '.join(n for k in chosen for n in LAYOUTS[k])}) under {base}; "
        "pass check_frames=False to read the annotation alone"
    )


def _clip_dir(frames_root: Path | None, subject: str, clip: str) -> Path | None:
    if frames_root is None or not clip:
        return None
    subject_dir = find_child_dir(frames_root, subject)
    return find_child_dir(subject_dir, clip) if subject_dir is not None else None
