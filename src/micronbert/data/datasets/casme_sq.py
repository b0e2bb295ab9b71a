"""CAS(ME)^2 reader (DATASETS.md §8).

Annotation ``CAS(ME)^2code_final.xlsx`` (or ``code_final.xlsx``): the first sheet has no header,
columns by position: subject number, expression name (``anger1_1``), onset, apex, offset, AUs,
emotion, type (``micro-expression`` / ``macro-expression``), self-report. ``naming rule1`` maps
subject numbers to folders (``s15``), ``naming rule2`` maps expression names (the part before the
last ``_``) to 4-digit video codes (``0101``). Frames: ``rawpic/s15/15_0101disgustingteeth/img001.jpg``
(1-based numbers, video folders matched by their code, so ``s19/23_0502funnyerrors`` is found too).
Offset 0 means missing; the apex is then used.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from micronbert.data.datasets.build import LoadOptions, RawSample, annotation_file, build_table
from micronbert.data.datasets.paths import find_child_dir, find_nested_dir, require_dir
from micronbert.data.datasets.sheets import normalise_name, read_grid, sheet_names
from micronbert.data.table import LoadReport

DATASET = "casme_sq"
FPS = 30.0
ANNOTATION_PATTERNS = [r"cas\(me\)\^?2.*code.*final.*\.(xlsx|xlsm|xls|csv)", r"code_?final.*\.(xlsx|xlsm|xls|csv)"]
POSITIONAL_COLUMNS = ("subject", "expression", "onset", "apex", "offset", "action_units", "emotion", "type",
                      "self_report")
EXPRESSION_TYPES = {"micro": ("micro",), "macro": ("macro",), "all": ("micro", "macro")}
LAYOUTS = {"rawpic": ("rawpic",), "cropped": ("cropped",), "selectedpic": ("selectedpic",)}
_INT = re.compile(r"\d+(?:\.0*)?")


def read(
    root: str | Path, options: LoadOptions, report: LoadReport, expression_type: str = "micro", layout: str = "rawpic"
) -> pd.DataFrame:
    """CAS(ME)^2 samples under ``root``.

    expression_type: ``micro`` (the 57 MEs), ``macro`` or ``all``. layout: frame folder, ``rawpic``,
    ``cropped`` or ``selectedpic``.
    """
    if expression_type not in EXPRESSION_TYPES:
        raise ValueError(f"unknown expression_type {expression_type!r}; choose one of {list(EXPRESSION_TYPES)}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown CAS(ME)^2 layout {layout!r}; choose one of {list(LAYOUTS)}")
    base = require_dir(root, "CAS(ME)^2")
    path = annotation_file(base, options, ANNOTATION_PATTERNS, "CAS(ME)^2", report)
    sheets = sheet_names(path)
    codes = _code_rows(read_grid(path, _sheet(sheets, ["CASMEcode_final", "CASFEcode_final"], 0)))
    folders = _subject_folders(read_grid(path, _sheet(sheets, ["naming rule1"], 1))) if len(sheets) > 1 else {}
    videos = _video_codes(read_grid(path, _sheet(sheets, ["naming rule2"], 2))) if len(sheets) > 2 else {}
    if not folders or not videos:
        report.warn(f"{path.name}: naming-rule sheets missing or empty; subjects keep their numbers and frames cannot "
                    "be located")
    frames_root = _frames_root(base, layout) if options.check_frames else None
    samples = []
    for line, row in codes:
        kind = normalise_name(row["type"] or "")
        if not any(wanted in kind for wanted in EXPRESSION_TYPES[expression_type]):
            continue
        source = f"{path.name} row {line}"
        number = _int_text(row["subject"] or "") or (row["subject"] or "")
        subject = folders.get(number, number)
        expression = row["expression"] or ""
        code = videos.get(expression.rsplit("_", 1)[0].lower())
        samples.append(
            RawSample(
                dataset=DATASET,
                subject=subject,
                clip=expression,
                onset=row["onset"],
                apex=row["apex"],
                offset=row["offset"],
                emotion=row["emotion"],
                action_units=row["action_units"],
                fps=FPS,
                frames_dir=_video_dir(frames_root, subject, code),
                frames_problem=f"no video folder for subject {subject}, expression {expression!r} (code {code}) "
                               f"under {frames_root}",
                source=source,
                zero_is_missing=True,
            )
        )
    return build_table(samples, options, report)


def _sheet(names: list[str], preferred: list[str], position: int) -> str | int:
    lowered = {normalise_name(name): name for name in names}
    for name in preferred:
        if normalise_name(name) in lowered:
            return lowered[normalise_name(name)]
    return position


def _int_text(text: str) -> str | None:
    return str(int(float(text))) if _INT.fullmatch(text.strip()) else None


def _code_rows(grid: pd.DataFrame) -> list[tuple[int, dict[str, str | None]]]:
    rows = []
    for index in range(len(grid)):
        cells = [grid.iat[index, i] if i < grid.shape[1] else None for i in range(len(POSITIONAL_COLUMNS))]
        if all(cell is None for cell in cells) or _int_text(cells[0] or "") is None:
            continue  # blank lines and a header line in user exports
        rows.append((index + 1, dict(zip(POSITIONAL_COLUMNS, cells))))
    return rows


def _subject_folders(grid: pd.DataFrame) -> dict[str, str]:
    """Subject number -> folder (``s15``): the cell like ``s15`` and the last integer cell of a row."""
    mapping = {}
    for index in range(len(grid)):
        cells = [cell for cell in grid.iloc[index] if cell is not None]
        folder = next((c for c in cells if re.fullmatch(r"s\d+", c, re.IGNORECASE)), None)
        numbers = [_int_text(c) for c in cells if _int_text(c) is not None]
        if folder and numbers:
            mapping[numbers[-1]] = folder.lower()
    return mapping


def _video_codes(grid: pd.DataFrame) -> dict[str, str]:
    """Expression name (lower case) -> 4-digit video code."""
    mapping = {}
    for index in range(len(grid)):
        cells = [cell for cell in grid.iloc[index] if cell is not None]
        code = next((c for c in cells if _int_text(c) is not None), None)
        name = next((c for c in cells if _int_text(c) is None), None)
        if code and name:
            mapping[name.lower()] = f"{int(float(code)):04d}"
    return mapping


def _frames_root(base: Path, layout: str) -> Path:
    found = find_nested_dir(base, LAYOUTS[layout])
    if found is None:
        raise FileNotFoundError(f"no CAS(ME)^2 '{layout}' folder under {base}; pass check_frames=False to read the "
                                "sheet alone")
    return found


def _video_dir(frames_root: Path | None, subject: str, code: str | None) -> Path | None:
    if frames_root is None or code is None:
        return None
    subject_dir = find_child_dir(frames_root, subject)
    if subject_dir is None:
        return None
    pattern = re.compile(rf"\d+_{code}.*")
    return next((p for p in sorted(subject_dir.iterdir()) if p.is_dir() and pattern.fullmatch(p.name)), None)
