"""CAS(ME)^3 readers: Part A micro-expressions and Part C mock-crime MEs (DATASETS.md §7).

Part A annotation: ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`` (sheet ``label``, 860 MEs) or the
v1 ``.xls`` (sheet ``Sheet1``); onset/apex/offset are stored as text and are the JPG file numbers;
``0`` means missing. Frames: the raw ``.../spNO.1/a/color/355.jpg`` videos (several MEs per video;
folders matched case-insensitively, ``spNo`` and ``J`` included) or pre-cut per-ME folders
``spNo.1_a_355/``. Samples are keyed by subject, clip (stimulus letter) and onset.

Part C annotation: ``CAS(ME)3_part_C_ME.xlsx`` (sheet ``mockCrimeME``: sub, count, onset, offset,
au, emotion; no apex). Onset/offset are positions in the sorted frame listing of the subject's video
folder, not file numbers; they are converted when the frames are checked.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from micronbert.data.datasets.build import LoadOptions, annotation_file, build_table, sample_from_row, sheet_rows
from micronbert.data.datasets.ids import casme3_clip, casme3_subject, plain_id
from micronbert.data.datasets.paths import collect_dirs, find_child_dir, require_dir
from micronbert.data.datasets.sheets import cell_text, choose_sheet, column, read_sample_sheet, read_table
from micronbert.data.table import LoadReport

DATASET_A = "casme3"
DATASET_C = "casme3c"
FPS = 30.0
PART_C_CLIP = "mockcrime"
A_PATTERNS = {
    "v2": [r".*part_?a_?me_label.*v2.*\.(xlsx|xlsm|xls|csv)"],
    "v1": [r".*part_?a_?me_label.*v1.*\.(xlsx|xlsm|xls|csv)"],
    "auto": [
        r".*part_?a_?me_label.*v2.*\.(xlsx|xlsm|xls|csv)",
        r".*part_?a_?me_label.*v1.*\.(xlsx|xlsm|xls|csv)",
        r".*part_?a_?me_label.*\.(xlsx|xlsm|xls|csv)",
    ],
}
C_PATTERNS = [r".*part_?c_?me\.(xlsx|xlsm|xls|csv)", r".*part_?c_?me.*\.(xlsx|xlsm|xls|csv)"]
A_COLUMNS = {
    "subject": ("Subject",),
    "clip": ("Filename",),
    "onset": ("Onset",),
    "apex": ("Apex",),
    "offset": ("Offset",),
    "action_units": ("AU", "AUs", "Action Units"),
    "emotion": ("emotion", "Estimated Emotion"),
}
_SUBJECT_DIR = re.compile(r"sp\s*no\.?\s*\d+", re.IGNORECASE)
_PRECUT_DIR = re.compile(r"(sp\s*no\.?\s*\d+)_([a-z])_(\d+)", re.IGNORECASE)


def read(root: str | Path, options: LoadOptions, report: LoadReport, version: str = "auto") -> pd.DataFrame:
    """CAS(ME)^3 Part A MEs under ``root``. version: ``auto`` (v2 preferred), ``v2`` or ``v1``."""
    if version not in A_PATTERNS:
        raise ValueError(f"unknown CAS(ME)^3 sheet version {version!r}; choose one of {list(A_PATTERNS)}")
    base = require_dir(root, "CAS(ME)^3")
    sheet_path = annotation_file(base, options, A_PATTERNS[version], "CAS(ME)^3 Part A", report)
    sheet, names = read_sample_sheet(sheet_path, A_COLUMNS, sheet=choose_sheet(sheet_path, ["label", "Sheet1"]))
    folders = _FolderIndex(base) if options.check_frames else None
    samples = []
    for row, source, (subject, clip) in sheet_rows(sheet, DATASET_A, report, lambda row: _part_a_ids(row, names)):
        if clip != cell_text(row[names["clip"]]):
            report.warn(f"{source}: clip {cell_text(row[names['clip']])!r} written in upper case, read as {clip!r}")
        onset_text = cell_text(row[names["onset"]])
        samples.append(
            sample_from_row(
                row,
                names,
                dataset=DATASET_A,
                subject=subject,
                clip=clip,
                source=source,
                fps=FPS,
                frames_dir=folders.part_a(subject, clip, onset_text) if folders else None,
                frames_problem=f"no frame folder for {subject} {clip} (raw .../{subject}/{clip}/color or pre-cut "
                               f"{subject}_{clip}_{onset_text})",
                zero_is_missing=True,
            )
        )
    return build_table(samples, options, report)


def read_part_c(root: str | Path, options: LoadOptions, report: LoadReport, position_base: int = 1) -> pd.DataFrame:
    """CAS(ME)^3 Part C MEs under ``root``.

    position_base: the number of the first frame in the sheet's positions (1 = first listed file).
    The Part C frame layout (``<sub>/[color/]*.jpg``) and the position base are unconfirmed; a
    warning says so.
    """
    if position_base not in (0, 1):
        raise ValueError(f"position_base must be 0 or 1, got {position_base!r}")
    base = require_dir(root, "CAS(ME)^3 Part C")
    sheet_path = annotation_file(base, options, C_PATTERNS, "CAS(ME)^3 Part C", report)
    sheet = read_table(sheet_path, [("sub",), ("onset",), ("offset",)], sheet=choose_sheet(sheet_path, ["mockCrimeME"]))
    names = {
        "subject": column(sheet, ("sub", "Subject")),
        "onset": column(sheet, ("onset",)),
        "apex": column(sheet, ("apex",), required=False),
        "offset": column(sheet, ("offset",)),
        "action_units": column(sheet, ("au", "AUs"), required=False),
        "emotion": column(sheet, ("emotion",)),
    }
    if options.check_frames:
        report.warn(
            f"CAS(ME)^3 Part C: onset/offset read as {position_base}-based positions in each subject's sorted "
            "frame listing (<sub>/[color/]); layout and base are unconfirmed (DATASETS.md §7)"
        )
    else:
        report.note("CAS(ME)^3 Part C without frames: onset/apex/offset are positions in the frame listing, not "
                    "frame numbers")
    samples = []
    folders: dict[str, Path | None] = {}
    def subject_of(row: dict) -> str:
        return _part_c_subject(row[names["subject"]])

    for row, source, subject in sheet_rows(sheet, DATASET_C, report, subject_of):
        samples.append(
            sample_from_row(
                row,
                names,
                dataset=DATASET_C,
                subject=subject,
                clip=PART_C_CLIP,
                source=source,
                fps=FPS,
                frames_dir=_part_c_dir(base, row[names["subject"]], subject, folders) if options.check_frames else None,
                frames_problem=f"no frame folder for Part C subject {subject} under {base}",
                positions=True,
                position_base=position_base,
                zero_is_missing=position_base == 1,
            )
        )
    return build_table(samples, options, report)


def _part_a_ids(row: dict[str, object], names: dict[str, str | None]) -> tuple[str, str]:
    return casme3_subject(row[names["subject"]]), casme3_clip(row[names["clip"]])


def _part_c_subject(value: object) -> str:
    text = cell_text(value) or ""
    return casme3_subject(text) if _SUBJECT_DIR.fullmatch(text) else plain_id(value, "CAS(ME)^3 Part C subject", pad=2)


def _part_c_dir(base: Path, raw: object, subject: str, cache: dict[str, Path | None]) -> Path | None:
    if subject not in cache:
        names = [subject, cell_text(raw) or subject, subject.lstrip("0") or "0", f"sub{subject}", f"s{subject}"]
        wanted = [name.lower() for name in names]
        found = collect_dirs(base, lambda name: name.lower() in wanted, max_depth=3)
        folder = next((found[name][0] for name in wanted if name in found), None)
        color = find_child_dir(folder, "color") if folder is not None else None
        cache[subject] = color if color is not None else folder
    return cache[subject]


class _FolderIndex:
    """Where Part A frames live: raw subject folders and pre-cut per-ME folders, found once."""

    def __init__(self, base: Path) -> None:
        found = collect_dirs(base, lambda name: bool(_SUBJECT_DIR.fullmatch(name) or _PRECUT_DIR.fullmatch(name)))
        self._subjects: dict[str, Path] = {}
        self._precut: dict[tuple[str, str, str], Path] = {}
        for paths in found.values():
            for path in paths:
                precut = _PRECUT_DIR.fullmatch(path.name)
                if precut:
                    key = (casme3_subject(precut.group(1)), precut.group(2).lower(), str(int(precut.group(3))))
                    self._precut.setdefault(key, path)
                else:
                    self._subjects.setdefault(casme3_subject(path.name), path)

    def part_a(self, subject: str, clip: str, onset: str | None) -> Path | None:
        """The pre-cut folder of this ME if present, else the raw video folder (``color`` inside)."""
        if onset is not None and onset.isdigit():
            precut = self._precut.get((subject, clip, str(int(onset))))
            if precut is not None:
                color = find_child_dir(precut, "color")
                return color if color is not None else precut
        subject_dir = self._subjects.get(subject)
        video = find_child_dir(subject_dir, clip) if subject_dir is not None else None
        if video is None:
            return None
        color = find_child_dir(video, "color")
        return color if color is not None else video
