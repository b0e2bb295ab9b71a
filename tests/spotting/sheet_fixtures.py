"""Writers of spotting annotation sheets in the exact layouts of the real releases (docs/SPOTTING.md-4.3), so the
readers are tested without licensed data.

CAS(ME)^2 ``CAS(ME)^2code_final.xlsx``: sheet ``CASFEcode_final`` without a header (9 columns by position), ``naming
rule1`` (folder number, folder code, subject index; one line per code row) and ``naming rule2`` (4-digit code stored as
text, stimulus name). SAMM Long Videos: ``v1`` (sheet ``FACS_Movement_Only``, notes on rows 1-9, header on row 10),
``v2`` (the same 10-row preamble, which loaders skip; its sheet name is not documented and assumed), ``v3`` (``Sheet1``,
the same notes, header on row 10 with two blank header cells) and ``header_row1`` (a re-saved copy: ``Sheet1``, header
on row 1, frames rounded, onset 0 written as 1). CAS(ME)^3 Part A ``.xls`` with sheets ``AU+Emotion`` and ``eye
blink`` (frame numbers stored as text), Part C ``organize`` and ``mockCrimeME``.

``casme_sq_rows_at_real_counts`` and ``samm_lv_rows_at_real_counts`` build sheets with the real sheets' row, class,
video, subject and quirk counts (``CASME_SQ_COUNTS``, ``SAMM_LV_COUNTS``, from docs/SPOTTING.md); their frame values
are invented.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.data.fixture_trees import write_workbook

# --- CAS(ME)^2 -------------------------------------------------------------------------------------------------

CASME_SQ_FILE = "CAS(ME)^2code_final.xlsx"
CASME_SQ_CODES = {"0101": "disgust1", "0102": "disgust2", "0401": "anger1", "0402": "anger2", "0502": "happy1",
                  "0503": "happy2", "0505": "happy3", "0507": "happy4", "0508": "happy5"}
CASME_SQ_FOLDER_NUMBERS = (15, 16, 19, 20, 21, 22, 23, 24, 25, 26, 27, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 40)
CASME_SQ_COUNTS = {"intervals": 357, "macro": 300, "micro": 57, "videos": 95, "subjects": 22, "videos_with_micro": 33,
                   "offset_zero": 44, "apex_zero": 1, "offset_before_apex": 3}

# (subject index, expression, onset, apex, offset, AU, emotion, type, self-report): the documented first rows and
# quirk rows (docs/SPOTTING.md) and one micro-expression
CASME_SQ_ROWS = [
    (1, "anger1_1", 557, 572, 608, "4+10+14", "negative", "macro-expression", "anger"),
    (1, "anger1_2", 2854, 2862, 2871, 38, "others", "macro-expression", "sadness"),
    (1, "anger2_1", 2155, 2163, 0, 4, "negative", "macro-expression", "anger"),
    (17, "anger1_1", 1763, 0, 1787, 12, "positive", "macro-expression", "happiness"),
    (11, "disgust1_5", 1221, 1230, 1224, 4, "negative", "macro-expression", "disgust"),
    (14, "happy2_1", 2169, 2203, 2202, 12, "positive", "macro-expression", "happiness"),
    (15, "anger1_12", 2407, 2455, 2451, "4+7", "negative", "macro-expression", "anger"),
    (2, "disgust1_1", 100, 104, 112, "4+10", "negative", "micro-expression", "disgust"),
    (22, "happy2_1", 2692, 2707, 0, 12, "positive", "macro-expression", "happiness"),
]


def casme_sq_folder(index: int) -> str:
    """The subject folder (``s15``...) of a subject index (1...22) in these fixtures."""
    return f"s{CASME_SQ_FOLDER_NUMBERS[index - 1]}"


def write_casme_sq(path: Path, rows: Sequence[Sequence[object]], naming_rules: bool = True) -> Path:
    """``CAS(ME)^2code_final.xlsx`` holding ``rows`` (9 cells each); without ``naming_rules`` the two naming-rule
    sheets are left out."""
    sheets = [("CASFEcode_final", [list(row) for row in rows])]
    if naming_rules:
        rule1 = [[CASME_SQ_FOLDER_NUMBERS[row[0] - 1], casme_sq_folder(row[0]), row[0]] for row in rows]
        sheets += [("naming rule1", rule1), ("naming rule2", [[code, name] for code, name in CASME_SQ_CODES.items()])]
    return write_workbook(path, sheets)


def casme_sq_rows_at_real_counts() -> list[tuple[object, ...]]:
    """357 code rows in 95 videos of 22 subjects: 300 macro and 57 micro (in 33 videos), 44 macro rows with offset 0,
    one with apex 0 and three with the offset before the apex."""
    names = list(CASME_SQ_CODES.values())
    pairs = [(k % 22 + 1, names[(2 * (k // 22) + k % 22 + 1) % 9]) for k in range(CASME_SQ_COUNTS["videos"])]
    micro = [i for i in range(CASME_SQ_COUNTS["intervals"]) if i % 95 < 33][:CASME_SQ_COUNTS["micro"]]
    macro = [i for i in range(CASME_SQ_COUNTS["intervals"]) if i not in set(micro)]
    offset_zero = set(macro[-CASME_SQ_COUNTS["offset_zero"]:])
    apex_zero, before_apex = {macro[0]}, set(macro[1:4])
    rows = []
    for i in range(CASME_SQ_COUNTS["intervals"]):
        subject, name = pairs[i % 95]
        onset = 200 + 400 * (i // 95)
        apex, offset = (onset + 4, onset + 11) if i in micro else (onset + 10, onset + 35)
        if i in offset_zero:
            offset = 0
        if i in apex_zero:
            apex = 0
        if i in before_apex:
            offset = onset + 4
        kind = "micro-expression" if i in micro else "macro-expression"
        rows.append((subject, f"{name}_{i // 95 + 1}", onset, apex, offset, "4+10", "negative", kind, "disgust"))
    return rows


# --- SAMM Long Videos ------------------------------------------------------------------------------------------

SAMM_LV_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
                  "Action Units", "Notes"]
SAMM_LV_NOTES = [
    ["SAMM Long Videos Dataset - FACS Codes"],
    [],
    ['"/" = or'],
    ["AU numbers follow FACS; L/R = left/right, A-E = intensity"],
    [],
    [],
    [None, None, None, None, None, "NOTE: Subjects with Apex Frame not annotated were labelled as -1."],
    [],
    [],
]
SAMM_LV_LAYOUTS = {
    "v1": ("FACS_Movement_Only", True, []),
    "v2": ("FACS_Movement_Only", True, []),
    "v3": ("Sheet1", True, [None, None]),
    "header_row1": ("Sheet1", False, [None, None, None]),
}
SAMM_LV_SUBJECTS = tuple(number for number in range(6, 38) if number not in (27, 29))
SAMM_LV_COUNTS = {"intervals": 502, "macro": 343, "micro": 159, "videos": 147, "subjects": 30, "videos_with_micro": 79,
                  "fractional_rows": 177, "onset_zero": 10, "apex_minus_one": 6}

# (subject, Filename, onset, apex, offset, Type): variant A values (docs/SPOTTING.md) with its quirks
SAMM_LV_ROWS = [
    ("006", "006_1_1", 566.4, 647.6, 743.2, "Macro"),
    ("006", "006_1_2", 2324, 2350, 2403, "Micro - 1/2"),
    ("006", "006_1_3", 0, 120, 1335, "Macro"),
    ("007", "007_7_1", 254, -1, 337, "Macro"),
    ("010", "010_1_1", 89, 721, 209, "Macro"),
    ("032", "032_3_1", 1896, -1069, 1970, "Micro - 1/2"),
    ("011", "011_2_1", 100.5, 120, 180, "Micro - 1/2"),
]


def write_samm_lv(path: Path, rows: Sequence[Sequence[object]], layout: str = "v1") -> Path:
    """A SAMM-LV sheet in ``layout`` (``SAMM_LV_LAYOUTS``) holding ``rows`` of (subject, Filename, onset, apex, offset,
    Type); the other columns get plausible values (``Duration`` as the release's formula)."""
    sheet_name, preamble, blank_headers = SAMM_LV_LAYOUTS[layout]
    first = len(SAMM_LV_NOTES) + 2 if preamble else 2
    lines = [list(note) for note in SAMM_LV_NOTES] if preamble else []
    lines.append(SAMM_LV_HEADER + blank_headers)
    for n, (subject, filename, onset, apex, offset, kind) in enumerate(rows):
        duration = f"=SUM(F{first + n}-D{first + n})+1"
        lines.append([subject, filename, n % 7 + 1, onset, apex, offset, duration, kind, "R12+L14", "Blinks"])
    return write_workbook(path, [(sheet_name, lines)])


def samm_lv_rows_at_real_counts() -> list[tuple[object, ...]]:
    """502 rows in 147 videos of 30 subjects: 343 Macro and 159 ``Micro - 1/2`` (in 79 videos), 177 macro rows with
    fractional frames, 10 macro rows with onset 0 and 6 rows with apex -1."""
    videos = [(SAMM_LV_SUBJECTS[k % 30], k // 30 + 1) for k in range(SAMM_LV_COUNTS["videos"])]
    micro = [i for i in range(SAMM_LV_COUNTS["intervals"]) if i % 147 < 79][:SAMM_LV_COUNTS["micro"]]
    macro = [i for i in range(SAMM_LV_COUNTS["intervals"]) if i not in set(micro)]
    fractional = set(macro[:SAMM_LV_COUNTS["fractional_rows"]])
    onset_zero = set(macro[-SAMM_LV_COUNTS["onset_zero"]:])
    apex_minus_one = set(micro[:3] + macro[-13:-10])
    rows = []
    for i in range(SAMM_LV_COUNTS["intervals"]):
        subject, video = videos[i % 147]
        onset = 1000 + 2000 * (i // 147)
        apex, offset = (onset + 25, onset + 59) if i in micro else (onset + 100, onset + 400)
        if i in fractional:
            onset, apex, offset = onset + 0.4, apex + 0.6, offset + 0.2
        if i in onset_zero:
            onset = 0
        if i in apex_minus_one:
            apex = -1
        kind = "Micro - 1/2" if i in micro else "Macro"
        rows.append((f"{subject:03d}", f"{subject:03d}_{video}_{i // 147 + 1}", onset, apex, offset, kind))
    return rows


# --- CAS(ME)^3 -------------------------------------------------------------------------------------------------

CASME3_FILE = "CAS(ME)3_part_A_v2.xls"
CASME3_ME_LABEL_FILE = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
CASME3_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Expression type", "Objective class"]
# (Subject, Filename, Onset, Apex, Offset, AU, Expression type): frame numbers as text, as in the release
CASME3_ROWS = [
    ("spNO.1", "a", "37", "63", "65", "4+15+R10", "Macro-expression"),
    ("spNO.1", "a", "355", "359", "360", "5", "Micro-expression"),
    ("spNO.14", "J", "1012", "1019", "1038", "14", "Micro-expression"),
    ("spNO.216", "e", "0", "0", "25", "14", "Micro-expression"),
    ("spNO.40", "e", "1812", "1824", "0", "4", "Micro-expression"),
    ("spNO.216", "d", "3647", "2668", "2694", "38", "Micro-expression"),
    ("spNO.2", "b", "12", "20", "30", "1+2", "blended"),
]
CASME3_BLINKS = [("spNO.1", "a", "357", "372"), ("spNO.14", "J", "391", "407")]
# (Subject, Filename, Onset, Apex, Offset, emotion) of the ME label sheet, matched to the micro rows above
CASME3_ME_LABELS = [
    ("spNO.1", "a", "355", "359", "360", "others"),
    ("spNO.14", "j", "1012", "1019", "1038", "Disgust"),
    ("spNO.216", "e", "0", "0", "25", "surprise"),
]


def write_casme3(folder: Path, rows: Sequence[Sequence[object]] = CASME3_ROWS,
                 blinks: Sequence[Sequence[object]] | None = CASME3_BLINKS,
                 labels: Sequence[Sequence[object]] | None = CASME3_ME_LABELS) -> Path:
    """``CAS(ME)3_part_A_v2.xls`` (sheets ``AU+Emotion`` and ``eye blink``; ``blinks=None`` leaves the second out) and,
    unless ``labels`` is None, the ME label sheet (sheet ``label``) in ``folder``; returns the .xls path."""
    sheets = [("AU+Emotion", [CASME3_HEADER] + [[*row, "VII"] for row in rows])]
    if blinks is not None:
        sheets.append(("eye blink", [["Subject", "Filename", "Onset", "Offset"]] + [list(row) for row in blinks]))
    if labels is not None:
        header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
        write_workbook(folder / CASME3_ME_LABEL_FILE, [
            ("label", [header] + [[*row[:5], "1", "VII", row[5]] for row in labels]), ("Sheet1", []), ("Sheet3", []),
        ])
    return write_workbook(folder / CASME3_FILE, sheets)


CASME3C_FILE = "CAS(ME)3_part_C.xls"
CASME3C_ME_FILE = "CAS(ME)3_part_C_ME.xlsx"
# (Subject, Onset, Offset, Exp_type) of the organize sheet; (sub, count, onset, offset, au, emotion) of the ME sheet
CASME3C_ROWS = [(4, 520, 525, 1), (4, 1420, 1450, 0), (5, 300, 310, 1), (5, 900, 950, 2)]
CASME3C_ME_ROWS = [(4, 1, 520, 525, "R4,5", "negative"), (1, 1, 373, 385, "2,24", "others")]


def write_casme3c(folder: Path, rows: Sequence[Sequence[object]] = CASME3C_ROWS,
                  me_rows: Sequence[Sequence[object]] | None = CASME3C_ME_ROWS) -> Path:
    """``CAS(ME)3_part_C.xls`` (sheet ``organize``) and, unless ``me_rows`` is None, ``CAS(ME)3_part_C_ME.xlsx``
    (sheet ``mockCrimeME``) in ``folder``; returns the .xls path."""
    organize = [["Subject", "Onset", "Offset", "diff", "Exp_type", "risk"]]
    organize += [[subject, onset, offset, offset - onset, kind, 1] for subject, onset, offset, kind in rows]
    if me_rows is not None:
        header = ["sub", "count", "onset", "offset", "au", "emotion"]
        write_workbook(folder / CASME3C_ME_FILE, [("mockCrimeME", [header] + [list(row) for row in me_rows])])
    return write_workbook(folder / CASME3C_FILE, [("organize", organize)])
