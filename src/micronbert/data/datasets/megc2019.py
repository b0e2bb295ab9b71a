"""MEGC 2019 composite (CASME II + SAMM + SMIC-HS, 3 classes; DATASETS.md §12).

Membership and labels come from the official ground truth ``combined_3class_gt.csv`` (no header:
database, subject, clip, label with 0 negative, 1 positive, 2 surprise; 442 rows), never from
emotion mappings. Each GT row is joined, after id normalisation (SAMM ``6`` -> ``006``, SMIC
``s1`` -> ``s01``), to the table of its source reader when that source's folder is given; without
source folders the table is built from the GT alone (no frames, no frame numbers), with a note.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from micronbert.data.datasets.build import LoadOptions
from micronbert.data.datasets.ids import casme2_subject, samm_subject, smic_clip, smic_subject
from micronbert.data.datasets.schemes import get_scheme
from micronbert.data.datasets.sheets import cell_text, find_annotation, read_grid
from micronbert.data.table import LoadReport, make_table, sample_key

DATASET = "megc2019"
SCHEME = "megc2019-3class"
SOURCES: dict[str, float] = {"casme2": 200.0, "samm": 200.0, "smic": 100.0}
GT_PATTERNS = [r".*combined_3class_gt\.csv", r".*combined_3class_gt.*\.csv"]
FULL_GT_ROWS = 442
_SUBJECT_IDS = {"casme2": casme2_subject, "samm": samm_subject, "smic": smic_subject}


def read(
    root: str | Path | Mapping[str, str | Path],
    options: LoadOptions,
    report: LoadReport,
    source_options: Mapping[str, Mapping[str, object]] | None = None,
) -> pd.DataFrame:
    """The composite table, labelled from the GT.

    root: a mapping with any of ``casme2``, ``samm``, ``smic`` (source dataset folders) and ``gt``
    (the GT file, or a folder holding it), or a single path to the GT file or its folder.
    source_options: extra reader options per source, e.g. ``{"casme2": {"layout": "cropped"}}``.
    """
    roots = _roots(root)
    gt_path = _gt_path(roots, options, report)
    gt = read_gt(gt_path, report)
    scheme = get_scheme(SCHEME)
    sources = {name: _source_table(name, roots[name], options, report, source_options)
               for name in SOURCES if name in roots}
    missing = [name for name in SOURCES if name not in sources]
    if missing:
        report.note(
            f"built from the GT file alone for {missing}: no frames and no onset/apex/offset "
            "(give their dataset folders in root to join the annotations)"
        )
    rows = []
    for line, database, subject, clip, label in gt:
        emotion = scheme.classes[label]
        if database not in sources:
            rows.append(_gt_only_row(database, subject, clip, label, emotion))
            continue
        match = sources[database].get((f"{database}/{subject}", clip.lower()))
        key = sample_key(database, f"{database}/{subject}", clip, None)
        if match is None:
            report.drop(key, f"GT row {line} not found in the {database} table")
            continue
        mapped = scheme.label_of(match["emotion"], database)
        if mapped != label:
            report.warn(f"{key}: source emotion {match['emotion']!r} does not map to GT class {emotion!r}; the GT "
                        "label is used")
        rows.append({**match, "label": label})
    return make_table(rows)


def _roots(root: str | Path | Mapping[str, str | Path]) -> dict[str, Path]:
    if isinstance(root, Mapping):
        unknown = sorted(set(root) - set(SOURCES) - {"gt"})
        if unknown:
            raise ValueError(f"megc2019 root keys must be among {sorted(SOURCES) + ['gt']}, got {unknown}")
        return {name: Path(str(value)).expanduser() for name, value in root.items()}
    return {"gt": Path(str(root)).expanduser()}


def _gt_path(roots: dict[str, Path], options: LoadOptions, report: LoadReport) -> Path:
    given = options.annotation or roots.get("gt")
    if given is not None and given.is_file():
        chosen = given
    else:
        folders = [given] if given is not None else [roots[name] for name in SOURCES if name in roots]
        chosen = _search_gt(folders)
    if "-2" in chosen.stem:
        report.warn(f"{chosen.name} looks like the 2018-11-30 GT (441 rows, lacks samm 032_3_1); use "
                    "combined_3class_gt.csv")
    report.note(f"MEGC 2019 ground truth: {chosen}")
    return chosen


def _search_gt(folders: list[Path]) -> Path:
    for folder in folders:
        if folder.is_dir():
            try:
                return find_annotation(folder, GT_PATTERNS, "MEGC 2019 ground-truth")[0]
            except FileNotFoundError:
                continue
    raise FileNotFoundError(
        f"MEGC 2019 ground truth (combined_3class_gt.csv) not found in {[str(f) for f in folders]}; "
        "give it as root={'gt': <file>, ...}"
    )


def read_gt(path: Path, report: LoadReport) -> list[tuple[int, str, str, str, int]]:
    grid = read_grid(path)
    rows = []
    for index in range(len(grid)):
        cells = [cell_text(grid.iat[index, i]) if i < grid.shape[1] else None for i in range(4)]
        if all(cell is None for cell in cells):
            continue
        line = index + 1
        if index == 0 and (cells[3] or "").lower() in {"label", "class", "emotion"}:
            continue
        database = (cells[0] or "").lower()
        if database not in SOURCES:
            raise ValueError(f"{path} line {line}: database {cells[0]!r} is not one of {sorted(SOURCES)}")
        if cells[3] not in {"0", "1", "2"}:
            raise ValueError(f"{path} line {line}: label {cells[3]!r} is not 0, 1 or 2")
        subject = _SUBJECT_IDS[database](cells[1])
        clip = smic_clip(cells[2]) if database == "smic" else (cells[2] or "")
        rows.append((line, database, subject, clip, int(cells[3])))
    if len(rows) != FULL_GT_ROWS:
        report.warn(f"{path.name} has {len(rows)} samples, the official composite has {FULL_GT_ROWS}")
    return rows


def _source_table(
    name: str, folder: Path, options: LoadOptions, report: LoadReport,
    source_options: Mapping[str, Mapping[str, object]] | None
) -> dict[tuple[str, str], dict]:
    from micronbert.data.datasets import read_dataset

    extra = dict((source_options or {}).get(name, {}))
    source = LoadOptions(check_frames=options.check_frames, missing_apex=options.missing_apex)
    table, source_report = read_dataset(name, folder, source, **extra)
    report.warnings.extend(source_report.warnings)
    report.notes.extend(source_report.notes)
    report.warnings.extend(f"source {name} left out {item.key}: {item.reason}" for item in source_report.dropped)
    index: dict[tuple[str, str], dict] = {}
    for record in table.to_dict(orient="records"):
        key = (record["subject"], str(record["clip"]).lower())
        if key in index:
            report.warn(f"{name} {key[0]} {record['clip']}: several samples in the source table; the first is joined")
            continue
        index[key] = record
    return index


def _gt_only_row(database: str, subject: str, clip: str, label: int, emotion: str) -> dict:
    return {
        "dataset": database,
        "subject": f"{database}/{subject}",
        "clip": clip,
        "frames": [],
        "onset": None,
        "apex": None,
        "offset": None,
        "fps": SOURCES[database],
        "emotion": emotion,
        "action_units": [],
        "label": label,
        "apex_source": None,
    }
