"""MMEW reader (DATASETS.md §9).

Layout ``MMEW_Final/Micro_Expression/{emotion}/{clip}/{n}.jpg``; annotation ``MMEW_Micro_Exp.xlsx``
(copies named ``_v2`` or ``(20)``) with ``Subject``, ``Filename``, ``OnsetFrame``, ``ApexFrame``,
``OffsetFrame``, ``Action Units``, ``Estimated Emotion``, ``remarks``. Labels come from the sheet and
are cross-checked against the emotion folder the clip sits in. The 90 fps rate is unconfirmed.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from micronbert.data.datasets.build import LoadOptions, annotation_file, build_table, sample_from_row, sheet_rows
from micronbert.data.datasets.ids import plain_id
from micronbert.data.datasets.paths import find_nested_dir, require_dir
from micronbert.data.datasets.schemes import normalise_emotion
from micronbert.data.datasets.sheets import cell_text, read_sample_sheet
from micronbert.data.table import LoadReport

DATASET = "mmew"
FPS = 90.0
ANNOTATION_PATTERNS = [r"mmew_micro_exp.*\.(xlsx|xlsm|xls|csv)", r"mmew.*micro.*\.(xlsx|xlsm|xls|csv)"]
COLUMNS = {
    "subject": ("Subject",),
    "clip": ("Filename",),
    "onset": ("OnsetFrame", "Onset Frame", "Onset"),
    "apex": ("ApexFrame", "Apex Frame", "Apex"),
    "offset": ("OffsetFrame", "Offset Frame", "Offset"),
    "action_units": ("Action Units", "AUs", "AU"),
    "emotion": ("Estimated Emotion", "Emotion"),
}


def read(root: str | Path, options: LoadOptions, report: LoadReport) -> pd.DataFrame:
    """MMEW micro-expression samples under ``root``."""
    base = require_dir(root, "MMEW")
    sheet, names = read_sample_sheet(annotation_file(base, options, ANNOTATION_PATTERNS, "MMEW", report), COLUMNS)
    if options.fps is None:
        report.warn("MMEW frame rate 90 fps is unconfirmed (DATASETS.md §9); pass fps= if it differs")
    clips = _clip_folders(base, report) if options.check_frames else {}
    samples = []
    def subject_of(row: dict) -> str:
        return plain_id(row[names["subject"]], "MMEW subject")

    for row, source, subject in sheet_rows(sheet, DATASET, report, subject_of):
        clip = cell_text(row[names["clip"]]) or ""
        emotion = normalise_emotion(row[names["emotion"]])
        folder = clips.get(clip.lower())
        if folder is not None and normalise_emotion(folder.parent.name) != emotion:
            report.warn(f"{source}: clip {clip} is in folder {folder.parent.name!r} but the sheet says {emotion!r}; "
                        "the sheet is used")
        samples.append(
            sample_from_row(
                row,
                names,
                dataset=DATASET,
                subject=subject,
                clip=clip,
                source=source,
                emotion=emotion,
                fps=FPS,
                frames_dir=folder,
                frames_problem=f"clip folder {clip} not found in any emotion folder",
            )
        )
    return build_table(samples, options, report)


def _clip_folders(base: Path, report: LoadReport) -> dict[str, Path]:
    micro = find_nested_dir(base, ["Micro_Expression", "Micro-Expression", "MicroExpression"])
    if micro is None:
        raise FileNotFoundError(f"no MMEW Micro_Expression folder under {base}; pass check_frames=False to read the "
                                "sheet alone")
    report.note(f"MMEW frames: {micro}")
    return {
        clip.name.lower(): clip
        for emotion in sorted(p for p in micro.iterdir() if p.is_dir())
        for clip in sorted(p for p in emotion.iterdir() if p.is_dir())
    }
