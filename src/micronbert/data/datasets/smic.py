"""SMIC reader: HS, VIS and NIR (DATASETS.md §6).

Plain release (``source="folders"``): ``SMIC_all_raw/HS/s1/micro/negative/s1_ne_01/image559740.bmp``
(cropped: ``SMIC_all_cropped``, ``reg_image...``); labels come from the emotion folders only, the
``non_micro`` folders are skipped, onset and offset are the first and last frame of the clip folder,
and the apex is not annotated (estimated, see ``apex.py``). SMIC-E (``source="smic-e"``): the
``SMIC-HS-E_annotation*.xlsx`` sheets with absolute ``OnsetF``/``OffsetF`` (up to three MEs per
clip) over ``SMIC-HS-E/s01/s01_ne_01/`` long clips; free text below the table is ignored.
Ids are written the MEGC way: ``s01`` and ``s01_ne_01``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from micronbert.data.datasets.build import LoadOptions, RawSample, annotation_file, build_table
from micronbert.data.datasets.ids import smic_clip, smic_clip_emotion, smic_subject
from micronbert.data.datasets.paths import find_child_dir, find_nested_dir, require_dir
from micronbert.data.datasets.schemes import normalise_emotion
from micronbert.data.datasets.sheets import cell_text, column, find_annotation, read_table
from micronbert.data.frames import frame_number, list_frames
from micronbert.data.table import LoadReport

MODALITIES: dict[str, tuple[str, float, bool]] = {
    # modality: (dataset name, fps, fps confirmed)
    "HS": ("smic", 100.0, True),
    "VIS": ("smic_vis", 25.0, False),
    "NIR": ("smic_nir", 25.0, False),
}
SOURCES = ("auto", "folders", "smic-e")
_SUBJECT_DIR = re.compile(r"s\d+", re.IGNORECASE)
_ME_COLUMNS = (("OnsetF", "ApexF", "OffsetF"), ("Onset2F", "Apex2F", "Offset2F"), ("Onset3F", "Apex3F", "Offset3F"))


def read(
    root: str | Path,
    options: LoadOptions,
    report: LoadReport,
    modality: str = "HS",
    source: str = "auto",
    cropped: bool = False,
) -> pd.DataFrame:
    """SMIC samples of one ``modality`` (HS, VIS, NIR) under ``root``.

    source: ``folders`` (plain release), ``smic-e`` (extended sheets) or ``auto`` (SMIC-E when its
    annotation is found or given, else folders). cropped: use ``SMIC_all_cropped`` in folder mode.
    """
    mod = modality.upper()
    if mod not in MODALITIES:
        raise ValueError(f"unknown SMIC modality {modality!r}; choose one of {list(MODALITIES)}")
    if source not in SOURCES:
        raise ValueError(f"unknown SMIC source {source!r}; choose one of {list(SOURCES)}")
    base = require_dir(root, "SMIC")
    dataset, fps, confirmed = MODALITIES[mod]
    if not confirmed and options.fps is None:
        report.warn(f"SMIC-{mod} frame rate {fps:g} is unconfirmed (DATASETS.md §6); pass fps= if it differs")
    patterns = [rf"smic-{mod.lower()}-e_annotation.*\.(xlsx|xlsm|xls|csv)"]
    use_sheet = source == "smic-e" or (
        source == "auto" and (options.annotation is not None or _has_sheet(base, patterns)))
    if use_sheet:
        samples = _sheet_samples(base, options, report, mod, dataset, fps, patterns)
    else:
        samples = _folder_samples(base, report, mod, dataset, fps, cropped)
    return build_table(samples, options, report)


def _has_sheet(base: Path, patterns: list[str]) -> bool:
    try:
        find_annotation(base, patterns, "SMIC-E")
    except FileNotFoundError:
        return False
    return True


def _modality_dir(base: Path, mod: str, cropped: bool) -> Path:
    top = ("SMIC_all_cropped", "SMIC_all_raw") if cropped else ("SMIC_all_raw", "SMIC_all_cropped")
    for name in top:
        release = find_nested_dir(base, [name])
        if release is not None and find_child_dir(release, mod) is not None:
            return find_child_dir(release, mod)
    direct = find_child_dir(base, mod)
    if direct is not None:
        return direct
    if any(_SUBJECT_DIR.fullmatch(p.name) for p in base.iterdir() if p.is_dir()):
        return base
    raise FileNotFoundError(f"no SMIC {mod} folder (SMIC_all_raw/{mod}, {mod}/ or s1/... folders) under {base}")


def _folder_samples(base: Path, report: LoadReport, mod: str, dataset: str, fps: float,
                    cropped: bool) -> list[RawSample]:
    modality_dir = _modality_dir(base, mod, cropped)
    report.note(f"SMIC-{mod}: labels from the emotion folders under {modality_dir}")
    samples = []
    for subject_dir in sorted(p for p in modality_dir.iterdir() if p.is_dir() and _SUBJECT_DIR.fullmatch(p.name)):
        micro = find_child_dir(subject_dir, "micro")
        if micro is None:
            report.warn(f"SMIC-{mod} {subject_dir.name}: no 'micro' folder")
            continue
        for emotion_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
            for clip_dir in sorted(p for p in emotion_dir.iterdir() if p.is_dir()):
                sample = _folder_sample(clip_dir, emotion_dir.name, subject_dir.name, dataset, fps, report)
                if sample is not None:
                    samples.append(sample)
    return samples


def _folder_sample(clip_dir: Path, emotion: str, subject_name: str, dataset: str, fps: float,
                   report: LoadReport) -> RawSample | None:
    subject = smic_subject(subject_name)
    clip = smic_clip(clip_dir.name)
    key = f"{dataset} {dataset}/{subject} {clip}"
    try:
        frames = list_frames(clip_dir)
    except (OSError, ValueError) as error:
        report.drop(key, str(error))
        return None
    if not frames:
        report.drop(key, f"no frame files in {clip_dir}")
        return None
    folder_emotion = normalise_emotion(emotion)
    token_emotion = smic_clip_emotion(clip)
    if token_emotion is not None and token_emotion != folder_emotion:
        report.warn(f"{key}: clip name says {token_emotion}, folder says {folder_emotion}; the folder is used")
    return RawSample(
        dataset=dataset,
        subject=subject,
        clip=clip,
        onset=frame_number(frames[0]),
        apex=None,
        offset=frame_number(frames[-1]),
        emotion=folder_emotion,
        fps=fps,
        frames_dir=clip_dir,
        source=str(clip_dir),
    )


def _sheet_samples(
    base: Path, options: LoadOptions, report: LoadReport, mod: str, dataset: str, fps: float, patterns: list[str]
) -> list[RawSample]:
    sheet_path = annotation_file(base, options, patterns, f"SMIC-{mod}-E", report)
    sheet = read_table(sheet_path, [("Subject",), ("Filename",), ("OnsetF",), ("OffsetF",)])
    subject_col = column(sheet, ("Subject",))
    clip_col = column(sheet, ("Filename",))
    emotion_col = column(sheet, ("Emotion",), required=False)
    frames_root = find_nested_dir(base, [f"SMIC-{mod}-E"], max_depth=4) if options.check_frames else None
    if options.check_frames and frames_root is None:
        raise FileNotFoundError(f"no SMIC-{mod}-E frame folder under {base}; pass check_frames=False to read the "
                                "sheet alone")
    samples = []
    for index, row in enumerate(sheet.frame.to_dict(orient="records")):
        try:
            subject = smic_subject(row[subject_col])
        except ValueError:
            report.note(f"{sheet.row_ref(index)}: not a sample row (free text below the table), skipped")
            continue
        clip = smic_clip(cell_text(row[clip_col]) or "")
        emotion = row[emotion_col] if emotion_col else smic_clip_emotion(clip)
        clip_dir = _long_clip_dir(frames_root, subject, clip)
        for onset_name, apex_name, offset_name in _ME_COLUMNS:
            onset_col = column(sheet, (onset_name,), required=False)
            if onset_col is None or cell_text(row[onset_col]) is None:
                continue
            apex_col = column(sheet, (apex_name,), required=False)
            offset_col = column(sheet, (offset_name,), required=False)
            samples.append(
                RawSample(
                    dataset=dataset,
                    subject=subject,
                    clip=clip,
                    onset=row[onset_col],
                    apex=row[apex_col] if apex_col else None,
                    offset=row[offset_col] if offset_col else None,
                    emotion=emotion,
                    fps=fps,
                    frames_dir=clip_dir,
                    frames_problem=f"clip folder {subject}/{clip} not found under {frames_root}",
                    source=sheet.row_ref(index),
                )
            )
    return samples


def _long_clip_dir(frames_root: Path | None, subject: str, clip: str) -> Path | None:
    if frames_root is None:
        return None
    for subject_name in (subject, f"s{int(subject[1:])}"):
        subject_dir = find_child_dir(frames_root, subject_name)
        if subject_dir is not None:
            for clip_name in (clip, clip.replace(subject, subject_name, 1)):
                found = find_child_dir(subject_dir, clip_name)
                if found is not None:
                    return found
    return None
