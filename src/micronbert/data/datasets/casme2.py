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

from micronbert.data.datasets.build import LoadOptions, RawSample, annotation_file, build_table
from micronbert.data.datasets.ids import casme2_subject
from micronbert.data.datasets.paths import find_child_dir, find_nested_dir, has_subdirs_matching, require_dir
from micronbert.data.datasets.sheets import cell_text, column, read_table
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
    sheet_path = annotation_file(base, options, ANNOTATION_PATTERNS, "CASME II", report)
    sheet = read_table(sheet_path, [COLUMNS["subject"], COLUMNS["clip"], COLUMNS["onset"], COLUMNS["offset"]])
    names = {key: column(sheet, aliases, required=key != "action_units") for key, aliases in COLUMNS.items()}
    frames_root = _frames_root(base, layout, report) if options.check_frames else None
    samples = []
    for index, row in enumerate(sheet.frame.to_dict(orient="records")):
        source = sheet.row_ref(index)
        try:
            subject = casme2_subject(row[names["subject"]])
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
        raise ValueError(f"unknown CASME II layout {layout!r}; choose 'auto' or one of {sorted(LAYOUTS)}")
    chosen = list(LAYOUTS) if layout == "auto" else [layout]
    for name in chosen:
        found = find_nested_dir(base, LAYOUTS[name])
        if found is not None:
            report.note(f"CASME II frames: {name} layout at {found}")
            return found
    if layout == "auto" and has_subdirs_matching(base, r"sub\d+"):
        report.note(f"CASME II frames: subject folders directly under {base}")
        return base
    raise FileNotFoundError(
        f"no CASME II frame folder ({', '.join(n for k in chosen for n in LAYOUTS[k])}) under {base}; "
        "pass check_frames=False to read the annotation alone"
    )


def _clip_dir(frames_root: Path | None, subject: str, clip: str) -> Path | None:
    if frames_root is None or not clip:
        return None
    subject_dir = find_child_dir(frames_root, subject)
    return find_child_dir(subject_dir, clip) if subject_dir is not None else None
