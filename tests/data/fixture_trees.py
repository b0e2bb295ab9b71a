"""Builders of miniature dataset trees, in the exact layouts and with the sheet quirks of the real
releases (DATASETS.md), so every reader is tested without licensed data.

Each builder writes under a given folder and returns its root. The row tables (``CASME2_ROWS``,
...) are the single source of the fixtures' contents; tests derive their expectations from them.
Frames are tiny images whose content peaks at a known apex frame.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from openpyxl import Workbook

FRAME_SIZE = (16, 12)  # width, height


def frame_image(number: int, apex: int | None, grey: bool = False) -> np.ndarray:
    """A frame whose centre brightens towards ``apex`` (flat when ``apex`` is None)."""
    width, height = FRAME_SIZE
    image = np.full((height, width), 60, dtype=np.uint8)
    if apex is not None:
        image[3:9, 4:12] = int(60 + max(0, 150 - 40 * abs(number - apex)))
    if grey:
        return image
    return np.stack([image, image // 2 + 20, 255 - image], axis=2)


def write_clip(
    folder: Path, numbers: Iterable[int], name: str = "img{n}.jpg", apex: int | None = None, grey: bool = False
) -> list[Path]:
    """Write one image per frame number, file names from ``name`` (``{n}`` is the number)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in numbers:
        path = folder / name.format(n=number)
        if not cv2.imwrite(str(path), frame_image(number, apex, grey)):
            raise OSError(f"could not write test frame {path}")
        paths.append(path)
    return paths


def write_workbook(path: Path, sheets: Sequence[tuple[str, Sequence[Sequence[object]]]]) -> Path:
    """An .xlsx (or legacy .xls) file with the given sheets; each row is a list of cells (None = blank)."""
    if path.suffix == ".xls":
        return _write_xls(path, sheets)
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def _write_xls(path: Path, sheets: Sequence[tuple[str, Sequence[Sequence[object]]]]) -> Path:
    import xlwt

    book = xlwt.Workbook()
    for title, rows in sheets:
        sheet = book.add_sheet(title)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is not None:
                    sheet.write(r, c, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(str(path))
    return path


def _apex_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None


# --- CASME II -------------------------------------------------------------------------------
# (subject, clip, onset, apex, offset, AU, emotion, has_frames). Apex "/" means missing.
CASME2_ROWS = [
    (1, "EP02_01f", 97, 100, 103, "12", "happiness", True),
    (1, "EP19_05f", 10, "/", 16, "4+7", "disgust", True),
    (2, "EP01_2", 5, 7, 9, "R14A", "others", True),
    (3, "EP06_02_01", 20, 22, 24, "1+2", "surprise", True),
    (4, "EP09f", 30, 31, 33, "14", "repression", True),
    (5, "EP03_02", 40, 41, 42, "10", "fear", True),
    (6, "EP07_04", 50, 52, 54, "17", "sadness", True),
    (7, "EP08_1", 60, 62, 64, "4", "disgust", False),
]
CASME2_HIDDEN_APEX = 13  # where the frames of the "/" row peak
CASME2_SHEET_NAMES = ["CASME2-coding-20140508.xlsx", "CASME2-coding-20190701.xlsx", "CASME2-coding-updated.xlsx"]
CASME2_LAYOUTS = {"raw_selected": ("CASME2_RAW_selected", "img{n}.jpg"), "cropped": ("Cropped", "reg_img{n}.jpg"),
                  "raw": ("CASME2-RAW", "img{n}.jpg")}


def build_casme2(base: Path, layout: str = "raw_selected", sheet_name: str = CASME2_SHEET_NAMES[0]) -> Path:
    """CASME II: coding sheet with the two blank-header columns and a ``/`` apex; frames unpadded."""
    root = base / "CASME2"
    header = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
              "Estimated Emotion"]
    rows = [header] + [[s, c, None, on, ap, off, None, au, emo] for s, c, on, ap, off, au, emo, _ in CASME2_ROWS]
    if sheet_name.endswith(".csv"):
        _write_csv(root / sheet_name, rows)
    else:
        write_workbook(root / sheet_name, [("Sheet1", rows)])
    folder, pattern = CASME2_LAYOUTS[layout]
    for subject, clip, onset, apex, offset, _, _, has_frames in CASME2_ROWS:
        if not has_frames:
            continue
        peak = _apex_or_none(apex) or CASME2_HIDDEN_APEX
        numbers = range(1, offset + 6) if layout == "raw" else range(onset, offset + 1)
        write_clip(root / folder / f"sub{subject:02d}" / clip, numbers, pattern, apex=peak)
    return root


def _write_csv(path: Path, rows: Sequence[Sequence[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join("" if cell is None else str(cell) for cell in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- SAMM -----------------------------------------------------------------------------------
# (subject, clip, onset, apex, offset, AU, emotion, frame-number width)
SAMM_ROWS = [
    (6, "006_1_2", 5562, 5564, 5566, "R12 + R15", "Anger", 5),
    (9, "009_3_1", 3577, 3579, 3581, "L14", "Happiness", 4),
    (11, "011_2_3", 98, 100, 102, "R14 or R15", "Other", 4),
    (13, "013_1_12", 40, 42, 44, "R14A", "Contempt", 4),
    (26, "026_1_1", 10, 15, 12, "1+2", "Surprise", 4),
    (28, "028_4_1", 70, 72, 74, "9", "Disgust", 4),
]
SAMM_APEX_OUTSIDE = "026_1_1"


def build_samm(base: Path, header_row: int = 14, cropped: bool = False) -> Path:
    """SAMM: notes above the header (row 14 in v2), integer subjects, mixed frame padding, grey frames."""
    root = base / "SAMM_dataset"
    notes = [["SAMM Micro FACS Codes"], [], ["Notes: frame numbers are absolute"]]
    notes += [[] for _ in range(header_row - 1 - len(notes))]
    header = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
              "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
    rows = [[s, c, int(c.split("_")[1]), on, ap, off, off - on + 1, "Micro", au, emo, 1, None]
            for s, c, on, ap, off, au, emo, _ in SAMM_ROWS]
    write_workbook(root / "SAMM_Micro_FACS_Codes_v2.xlsx", [("FACS", notes[: header_row - 1] + [header] + rows)])
    folder = "SAMM_CROP" if cropped else "SAMM"
    for subject, clip, onset, apex, offset, _, _, width in SAMM_ROWS:
        peak = apex if onset <= apex <= offset else onset + 1
        write_clip(root / folder / f"{subject:03d}" / clip, range(onset, offset + 1),
                   f"{subject:03d}_{{n:0{width}d}}.jpg", apex=peak, grey=True)
    return root


# --- SMIC -----------------------------------------------------------------------------------
# (modality, subject folder, emotion folder, clip folder, first frame, last frame, apex)
SMIC_CLIPS = [
    ("HS", "s1", "negative", "s1_ne_01", 559740, 559746, 559743),
    ("HS", "s1", "positive", "s1_po_02", 600, 604, 602),
    ("HS", "s2", "surprise", "s2_sur_01", 1000, 1003, 1001),
    ("HS", "s11", "negative", "s11_ne_03", 95, 102, 100),
    ("VIS", "s1", "negative", "s1_ne_01", 10, 13, 12),
]


def build_smic(base: Path, cropped: bool = False) -> Path:
    """SMIC plain release: labels only from folders, ``non_micro`` siblings, 6-digit ``.bmp`` frames."""
    root = base / "SMIC"
    release = "SMIC_all_cropped" if cropped else "SMIC_all_raw"
    pattern = "reg_image{n:06d}.bmp" if cropped else "image{n:06d}.bmp"
    for modality, subject, emotion, clip, first, last, apex in SMIC_CLIPS:
        write_clip(root / release / modality / subject / "micro" / emotion / clip, range(first, last + 1), pattern,
                   apex=apex)
        write_clip(root / release / modality / subject / "non_micro" / f"{subject}_non_01", range(1, 4), pattern)
    return root


# (subject, clip, OnsetF, OffsetF, Onset2F, Offset2F, FirstF, LastF, apex of the frames)
SMIC_E_ROWS = [
    (1, "s01_ne_01", 559740, 559746, 559750, 559753, 559700, 559800, 559743),
    (2, "s02_po_01", 300, 305, None, None, 250, 350, 303),
]


def build_smic_e(base: Path) -> Path:
    """SMIC-E: sheet with blank columns, second ME columns and free text below; padded subject folders."""
    root = base / "SMIC-E"
    header = ["Subject", "Filename", None, "OnsetF", "OffsetF", "Onset2F", "Offset2F", "Onset3F", "Offset3F",
              None, "FirstF", "LastF", "TotalMF1", "Emotion"]
    rows = [header]
    for subject, clip, on, off, on2, off2, first, last, _ in SMIC_E_ROWS:
        emotion = {"ne": "negative", "po": "positive"}[clip.split("_")[1]]
        rows.append([subject, clip, None, on, off, on2, off2, None, None, None, first, last, off - on + 1, emotion])
    rows += [[], ["Note: onset and offset frames are absolute frame numbers"]]
    write_workbook(root / "SMIC-HS-E_annotation.xlsx", [("Sheet1", rows)])
    long_clips = root / "SMIC-E_raw image" / "HS_long" / "SMIC-HS-E"
    for subject, clip, on, off, _, off2, _, _, apex in SMIC_E_ROWS:
        end = off2 if off2 is not None else off
        write_clip(long_clips / f"s{subject:02d}" / clip, range(on - 2, end + 3), "image{n:06d}.jpg", apex=apex)
    return root


# --- CAS(ME)^3 -------------------------------------------------------------------------------
# (Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion, frame location)
# frame location: "raw" (.../spNO.k/x/color/), "precut" (spNo.k_x_onset/), None (no frames).
CASME3_ROWS = [
    ("spNO.1", "a", "355", "359", "360", "5", "II", "others", "raw"),
    ("spNO.1", "a", "362", "364", "366", "R12", "I", "happy", "raw"),
    ("spNO.14", "J", "10", "12", "14", "4", "III", "disgust", "raw"),
    ("spNO.2", "b", "20", "22", "24", "4+9", "III", "Others", "raw"),
    ("spNO.3", "c", "5", "7", "9", "T28+14", "VII", "fear", "precut"),
    ("spNO.40", "e", "1812", "1814", "0", "18", "VII", "surprise", "raw"),
    ("spNO.216", "d", "3647", "2668", "2694", "38", "VII", "anger", None),
    ("spNO.5", "f", "30", "33", "35", "15", "VII", "sad", None),
]


def build_casme3(base: Path, version: str = "v2") -> Path:
    """CAS(ME)^3 Part A: ``label`` sheet among empty ones, numbers as text, ``J``/``Others`` quirks."""
    root = base / "CASME3"
    header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
    body = [list(row[:8]) for row in CASME3_ROWS]
    if version == "v2":
        sheets = [("label", [header] + body), ("Sheet1", []), ("Sheet3", [])]
    else:
        sheets = [("Sheet1", [header + [None, None]] + [row + [1, 2] for row in body])]
    write_workbook(root / "annotation" / f"cas(me)3_part_A_ME_label_JpgIndex_{version}.xlsx", sheets)
    raw = root / "part_A" / "data" / "part_A_split" / "part_A"
    for subject, clip, onset, apex, offset, *_, location in CASME3_ROWS:
        on, ap = int(onset), int(apex)
        last = max(int(offset), ap) + 2
        if location == "raw":
            write_clip(raw / subject / clip.lower() / "color", range(on - 2, last + 1), "{n}.jpg", apex=ap)
        elif location == "precut":
            folder = root / "Part_A_ME_clip" / "frame" / f"{subject.replace('NO', 'No')}_{clip}_{onset}"
            write_clip(folder, range(on, int(offset) + 1), "{n}.jpg", apex=ap)
    return root


# (sub, count, onset position, offset position, au, emotion); frames of each subject are numbered
# from PART_C_FIRST_FRAME, so position p (1-based) is frame PART_C_FIRST_FRAME + p - 1.
CASME3C_ROWS = [
    (1, 1, 3, 8, "R4,5", "negative"),
    (1, 2, 10, 14, "12", "positive"),
    (2, 1, 2, 6, "4\uff0c7", "surprise"),
    (2, 2, 5, 9, "1", "others"),
]
PART_C_FIRST_FRAME = 1000
PART_C_FRAMES = 16


def build_casme3_part_c(base: Path) -> Path:
    """CAS(ME)^3 Part C: ``mockCrimeME`` sheet (no apex) and per-subject frame folders."""
    root = base / "CASME3C"
    rows = [["sub", "count", "onset", "offset", "au", "emotion"]] + [list(row) for row in CASME3C_ROWS]
    write_workbook(root / "CAS(ME)3_part_C_ME.xlsx", [("mockCrimeME", rows)])
    for subject in sorted({row[0] for row in CASME3C_ROWS}):
        numbers = range(PART_C_FIRST_FRAME, PART_C_FIRST_FRAME + PART_C_FRAMES)
        write_clip(root / "part_C" / f"{subject:02d}" / "color", numbers, "{n}.jpg", apex=PART_C_FIRST_FRAME + 5)
    return root


# --- CAS(ME)^2 -------------------------------------------------------------------------------
# code sheet rows (no header): subject number, expression, onset, apex, offset, AU, emotion, type, self-report
CASME_SQ_ROWS = [
    (1, "anger1_1", 5, 7, 9, "4+9", "negative", "micro-expression", "angry"),
    (1, "anger1_2", 20, 22, 0, "4", "negative", "micro-expression", "angry"),
    (1, "happy1_1", 30, 35, 60, "12", "positive", "macro-expression", "happy"),
    (2, "funny2_1", 3, 4, 6, "12", "positive", "micro-expression", "amused"),
]
CASME_SQ_RULE1 = [("s15", 15, 1), ("s19", 19, 2)]
CASME_SQ_RULE2 = [("0401", "anger1"), ("0102", "happy1"), ("0502", "funny2")]
CASME_SQ_VIDEOS = {("s15", "0401"): "15_0401angrywhirlwind", ("s15", "0102"): "15_0102happy",
                   ("s19", "0502"): "23_0502funnyerrors"}


def build_casme_sq(base: Path) -> Path:
    """CAS(ME)^2: headerless code sheet plus naming-rule sheets; ``img001.jpg`` frames."""
    root = base / "CASME_sq"
    write_workbook(root / "CAS(ME)^2code_final.xlsx", [
        ("CASMEcode_final", [list(row) for row in CASME_SQ_ROWS]),
        ("naming rule1", [list(row) for row in CASME_SQ_RULE1]),
        ("naming rule2", [list(row) for row in CASME_SQ_RULE2]),
    ])
    for (subject, _code), video in CASME_SQ_VIDEOS.items():
        write_clip(root / "rawpic" / subject / video, range(1, 64), "img{n:03d}.jpg", apex=7)
    return root


# --- MMEW ------------------------------------------------------------------------------------
# (Subject, Filename, onset, apex, offset, AU, emotion, emotion folder)
MMEW_ROWS = [
    ("S01", "S01-01-001", 1, 4, 8, "AU12", "happiness", "happiness"),
    ("S01", "S01-05-002", 3, 5, 7, "AU4+AU7", "disgust", "disgust"),
    ("S02", "S02-07-001", 2, 3, 5, "AU1+AU2", "surprise", "others"),
    ("S03", "S03-02-001", 1, 2, 4, "AU9", "others", "others"),
]


def build_mmew(base: Path) -> Path:
    """MMEW: sheet at the root, frames under ``MMEW_Final/Micro_Expression/{emotion}/{clip}/{n}.jpg``."""
    root = base / "MMEW"
    header = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion",
              "remarks"]
    write_workbook(root / "MMEW_Micro_Exp.xlsx", [("Sheet1", [header] + [list(r[:7]) + [None] for r in MMEW_ROWS])])
    for _, clip, onset, apex, offset, _, _, folder in MMEW_ROWS:
        write_clip(root / "MMEW_Final" / "Micro_Expression" / folder / clip, range(onset, offset + 1), "{n}.jpg",
                   apex=apex)
    return root


# --- 4DME ------------------------------------------------------------------------------------
# (sub_ID, fold_name, Emotion, Onset, Apex, Offset, AUs): frame numbers written as floats.
FOURDME_ROWS = [
    ("S01", "S01_01", "Positive", 10.0, 12.0, 14.0, "AU6+AU12(k)"),
    ("S01", "S01_02", "Negative", 5.0, 6.0, 8.0, "AU4"),
    ("S02", "S02_01", "Surprise", 20.0, 21.0, 23.0, "AU1+AU2"),
]


def build_fourdme(base: Path) -> Path:
    """4DME: flag columns, float frame numbers, ``(k)`` AU marks, grey frames under ``gray_micro``."""
    root = base / "4DME"
    header = ["sub_ID", "fold_name", "fold", "Emotion", "Onset", "Apex", "Offset", "AUs", "eye blink",
              "Positive", "Negative", "Surprise", "Repression", "Others"]
    rows = [[s, f, 1, e, on, ap, off, au, 0, 0, 0, 0, 0, 0] for s, f, e, on, ap, off, au in FOURDME_ROWS]
    write_workbook(root / "4DME_Labelling_Micro_release v1.xlsx", [("Sheet1", [header] + rows)])
    write_workbook(root / "4DME_Labelling_Micro_extras_release v1.xlsx", [("Sheet1", [["sub_ID", "self-report emo'"]])])
    for subject, fold, _, onset, apex, offset, _ in FOURDME_ROWS:
        write_clip(root / "4DMicro" / "gray_micro" / subject / fold, range(int(onset), int(offset) + 1),
                   "{n:04d}.jpg", apex=int(apex), grey=True)
    return root


# --- MEGC 2019 -------------------------------------------------------------------------------
def megc_gt_rows() -> list[tuple[str, str, str, int]]:
    """GT rows (database, subject as MEGC writes it, clip, label) for the fixture sources above."""
    return [
        ("casme2", "sub01", "EP02_01f", 1),
        ("casme2", "sub01", "EP19_05f", 0),
        ("casme2", "sub03", "EP06_02_01", 2),
        ("casme2", "sub04", "EP09f", 0),
        ("samm", "6", "006_1_2", 0),
        ("samm", "9", "009_3_1", 1),
        ("samm", "26", "026_1_1", 2),
        ("smic", "s01", "s01_ne_01", 0),
        ("smic", "s01", "s01_po_02", 1),
        ("smic", "s02", "s02_sur_01", 2),
        ("smic", "s11", "s11_ne_03", 0),
    ]


def write_megc_gt(path: Path, rows: Sequence[tuple[str, str, str, int]]) -> Path:
    """The GT file as published: no header, CRLF line ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{d},{s},{c},{label}\r\n" for d, s, c, label in rows).encode())
    return path


# --- manifest --------------------------------------------------------------------------------
def build_manifest(base: Path) -> Path:
    """A user manifest: relative frame folders, one row without onset/offset (taken from the folder)."""
    root = base / "mydata"
    write_clip(root / "clips" / "p1_c1", range(1, 9), "frame_{n:03d}.png", apex=5)
    write_clip(root / "clips" / "p2_c1", range(100, 111), "f{n}.jpg", apex=104)
    text = (
        "dataset,subject,clip,frames_dir,onset,apex,offset,fps,emotion,action_units,label\n"
        "lab,p1,c1,clips/p1_c1,2,5,7,60,Happiness,6+12,1\n"
        "lab,p2,c1,clips/p2_c1,,,,60,disgust,4,0\n"
    )
    (root / "manifest.csv").write_text(text, encoding="utf-8")
    return root
