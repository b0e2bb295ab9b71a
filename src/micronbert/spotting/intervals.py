"""Annotated intervals of long videos: readers of the CAS(ME)^2, SAMM Long Videos and CAS(ME)^3 sheets for spotting
(docs/SPOTTING.md, docs/DATASETS.md), one row per interval, every repair and every dropped row reported.

The interval table (``INTERVAL_COLUMNS``):

- ``dataset``: the reader (``casme_sq``, ``samm_lv``, ``casme3``, ``casme3c``).
- ``video``: the video id as the MEGC tools write it: CAS(ME)^2 ``s15_0101`` (subject folder and 4-digit stimulus
  code), SAMM-LV ``006_1``, CAS(ME)^3 Part A ``spNO.1_a``, Part C the subject (``04``, one video per subject).
- ``subject``: ``s15``, ``006``, ``spNO.1``, ``04``.
- ``type``: ``micro``, ``macro`` or ``blink``, as annotated (never derived from the length).
- ``onset``, ``apex``, ``offset``: frame numbers, both ends inclusive; ``apex`` is missing where the sheet has none
  (CAS(ME)^3 blinks, Part C).
- ``emotion`` (lower case) and ``au`` (the AU cell as written): missing where the sheet has none.
- ``fps``; ``apex_source``: ``annotated``, ``midpoint`` or ``clipped`` (missing with the apex); ``source``: the file,
  sheet and spreadsheet row of the interval.

Repairs (``REPAIR_RULES``; each one is a ``Repair`` in the report, naming row, column, value and rule): ids written in
another case or spelling are normalised when the row is read; then fractional frames are rounded half up, onset 0
becomes 1, an offset of 0 or blank becomes the apex, an apex of -1, 0 or blank becomes the midpoint and an apex outside
the interval is clipped to it, in this order. Rows without a usable onset, with neither offset nor apex, with the
offset before the onset, of an unknown type or whose video id cannot be built are dropped and reported with the
reason. Every cell is read as text and parsed, so frame numbers stored as text read like numbers; the report notes how
many frame cells a sheet stores as text.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

import pandas as pd

from micronbert.data.datasets.casme3 import A_PATTERNS as CASME3_ME_LABEL_PATTERNS
from micronbert.data.datasets.casme3 import C_PATTERNS as CASME3C_ME_PATTERNS
from micronbert.data.datasets.casme_sq import ANNOTATION_PATTERNS as CASME_SQ_PATTERNS
from micronbert.data.datasets.ids import casme3_clip, casme3_subject, plain_id, samm_subject
from micronbert.data.datasets.samm import ANNOTATION_PATTERNS as SAMM_ME_PATTERNS
from micronbert.data.datasets.samm import COLUMNS as SAMM_ME_COLUMNS
from micronbert.data.datasets.sheets import (
    Sheet,
    cell_text,
    column,
    find_annotation,
    normalise_name,
    read_grid,
    read_table,
    sheet_names,
)

INTERVAL_COLUMNS: tuple[str, ...] = (
    "dataset", "video", "subject", "type", "onset", "apex", "offset", "emotion", "au", "fps", "apex_source", "source",
)
INTERVAL_TYPES: tuple[str, ...] = ("micro", "macro", "blink")
REPAIR_RULES: Mapping[str, str] = {
    "fraction-rounded": "a fractional frame number is rounded half up (566.4 -> 566, 647.5 -> 648), as the MEGC2020 "
                        "baseline reads SAMM-LV",
    "onset-zero": "onset 0 becomes 1, the first frame (frame numbers start at 1; the later SAMM-LV copy writes 1 in "
                  "these rows)",
    "offset-missing": "offset 0 or blank: the apex is the offset (CAS(ME)^2 and SAMM-LV convention, as in the MEGC2020 "
                      "baseline and SOFTNet)",
    "apex-missing": "apex -1, 0, blank or unreadable: the midpoint floor((onset + offset) / 2) (the MEGC2020 "
                    "baseline's rule for CAS(ME)^2 apex 0)",
    "apex-outside": "apex outside [onset, offset]: clipped to the nearer end; the interval is kept as annotated, since "
                    "it is what the MEGC scorers score",
    "name-case": "an id written in another case or spelling is normalised (CAS(ME)^3 'J' -> 'j', 'spNo.1' -> 'spNO.1')",
}
_MISSING_MARKERS = frozenset({"/", "\\", "-", "n/a", "na", "#n/a", "null", "none", "nan"})
_ANNOTATION_SUFFIX = r"\.(xlsx|xlsm|xls|csv)"
_SAMM_FILENAME = re.compile(r"0*(\d+)_(\d+)(?:_\d+)?")


class SpottingWarning(UserWarning):
    """Emitted once by ``read_intervals`` when rows were repaired or dropped; the report lists each one."""


@dataclass(frozen=True)
class Repair:
    """One repaired cell: where (``row``: file, sheet and row), which ``column``, the ``value`` as written, the
    ``rule`` applied (a key of ``REPAIR_RULES``) and the ``result``."""

    row: str
    column: str
    value: str
    rule: str
    result: str


@dataclass(frozen=True)
class DroppedRow:
    """A sheet row left out of the table, and why."""

    row: str
    reason: str


@dataclass
class IntervalReport:
    """What a spotting reader repaired, dropped and noticed while reading ``file``."""

    dataset: str
    file: Path | None = None
    repairs: list[Repair] = field(default_factory=list)
    dropped: list[DroppedRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def repair(self, row: str, column_name: str, value: object, rule: str, result: object) -> None:
        """Record that ``column_name`` of ``row`` was changed from ``value`` to ``result`` by ``rule``."""
        if rule not in REPAIR_RULES:
            raise ValueError(f"unknown repair rule {rule!r}; known: {', '.join(REPAIR_RULES)}")
        self.repairs.append(Repair(row, column_name, "(blank)" if value is None else str(value), rule, str(result)))

    def drop(self, row: str, reason: str) -> None:
        """Record that ``row`` was left out for ``reason``."""
        self.dropped.append(DroppedRow(row, reason))

    def note(self, message: str) -> None:
        """Record a remark about the whole read (file used, layout found, joins)."""
        self.notes.append(message)

    def rule_counts(self) -> dict[str, int]:
        """How many cells each repair rule changed."""
        counts: dict[str, int] = {}
        for item in self.repairs:
            counts[item.rule] = counts.get(item.rule, 0) + 1
        return counts

    def summary(self) -> str:
        """A few lines for logs: repairs by rule, drops with their reasons, and the notes."""
        lines = [f"{self.dataset} ({self.file.name if self.file else 'no file'}): {len(self.repairs)} repairs, "
                 f"{len(self.dropped)} rows dropped"]
        counts = sorted(self.rule_counts().items())
        lines += [f"  repaired {count}: {rule} ({REPAIR_RULES[rule]})" for rule, count in counts]
        lines += [f"  dropped {item.row}: {item.reason}" for item in self.dropped]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Cells:
    """One annotated interval as read: ids already built, frame cells as written."""

    row: str
    subject: str
    video: str
    type: str
    onset: object
    offset: object
    apex: object = None
    has_apex: bool = True
    emotion: str | None = None
    au: str | None = None
    clip: str | None = None


@dataclass(frozen=True)
class SpottingDataset:
    """A registered spotting reader.

    read: ``read(sheet_path, report) -> cells`` reads the annotation file; enrich: optional
    ``enrich(records, folder, report)`` that fills columns from companion files found in the dataset folder
    (``folder`` is None when the reader was given the sheet file itself).
    """

    name: str
    description: str
    fps: float
    patterns: tuple[str, ...]
    read: Callable[[Path, IntervalReport], list[_Cells]]
    enrich: Callable[[list[dict[str, object]], Path | None, IntervalReport], None] | None = None


# --- parsing ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    text: str | None
    value: int | None
    rounded: bool = False


def _frame(value: object) -> _Frame:
    """A frame cell: its integer value (rounded half up when fractional), None when blank, a marker or not a number."""
    text = cell_text(value)
    if text is None or text.lower() in _MISSING_MARKERS:
        return _Frame(text, None)
    try:
        number = Decimal(text)
    except InvalidOperation:
        return _Frame(text, None)
    if not number.is_finite():
        return _Frame(text, None)
    whole = int(number.to_integral_value(rounding=ROUND_HALF_UP))
    return _Frame(text, whole, rounded=number != whole)


def _integer(value: object) -> int | None:
    frame = _frame(value)
    return frame.value if frame.value is not None and not frame.rounded else None


def _lower(value: object) -> str | None:
    text = cell_text(value)
    return text.lower() if text is not None else None


def _expression_type(value: object) -> str | None:
    """``micro`` / ``macro`` from ``micro-expression``, ``Micro - 1/2``, ``Macro-expression``, ...; None otherwise."""
    name = normalise_name(value or "")
    kinds = [kind for kind in ("micro", "macro") if kind in name]
    return kinds[0] if len(kinds) == 1 else None


def _resolve(cells: _Cells, report: IntervalReport) -> dict[str, object] | None:
    """The repaired interval of one row as a record (without dataset, fps), or None when it was dropped."""
    onset, offset = _frame(cells.onset), _frame(cells.offset)
    apex = _frame(cells.apex) if cells.has_apex else None
    for name, frame in (("onset", onset), ("apex", apex), ("offset", offset)):
        if frame is not None and frame.rounded:
            report.repair(cells.row, name, frame.text, "fraction-rounded", frame.value)
    if onset.value is None or onset.value < 0:
        report.drop(cells.row, f"onset {onset.text or '(blank)'!r} is not a frame number")
        return None
    start = onset.value
    if start == 0:
        report.repair(cells.row, "onset", onset.text, "onset-zero", 1)
        start = 1
    peak = apex.value if apex is not None and apex.value is not None and apex.value > 0 else None
    end = offset.value
    unreadable = end is None and offset.text is not None and offset.text.lower() not in _MISSING_MARKERS
    if unreadable or (end is not None and end < 0):
        report.drop(cells.row, f"offset {offset.text!r} is not a frame number")
        return None
    if not end:
        if peak is None:
            report.drop(cells.row, f"no offset ({offset.text or '(blank)'}) and no usable apex to replace it")
            return None
        report.repair(cells.row, "offset", offset.text, "offset-missing", peak)
        end = peak
    if end < start:
        report.drop(cells.row, f"offset {end} before onset {start}")
        return None
    apex_value, apex_source = _resolve_apex(cells, apex, peak, start, end, report)
    return {"video": cells.video, "subject": cells.subject, "type": cells.type, "onset": start, "apex": apex_value,
            "offset": end, "emotion": cells.emotion, "au": cells.au, "apex_source": apex_source, "source": cells.row,
            "clip": cells.clip}


def _resolve_apex(
    cells: _Cells, apex: _Frame | None, peak: int | None, start: int, end: int, report: IntervalReport
) -> tuple[int | None, str | None]:
    if apex is None:
        return None, None
    if peak is None:
        middle = (start + end) // 2
        report.repair(cells.row, "apex", apex.text, "apex-missing", middle)
        return middle, "midpoint"
    if not start <= peak <= end:
        clipped = min(max(peak, start), end)
        report.repair(cells.row, "apex", apex.text, "apex-outside", clipped)
        return clipped, "clipped"
    return peak, "annotated"


# --- sheets ----------------------------------------------------------------------------------------------------


def _sheet_named(names: Sequence[str], wanted: Sequence[str], default: int | None) -> str | None:
    """The sheet whose normalised name is one of ``wanted``, else the one at ``default`` (None: no such sheet)."""
    by_name = {normalise_name(name): name for name in names}
    for name in wanted:
        if normalise_name(name) in by_name:
            return by_name[normalise_name(name)]
    return names[default] if default is not None and default < len(names) else None


def _ref(path: Path, sheet: str, row: int) -> str:
    return f"{path.name} [{sheet}] row {row}" if sheet else f"{path.name} row {row}"


def _rows(sheet: Sheet, sheet_name: str) -> Iterator[tuple[str, pd.Series]]:
    """Each data row of ``sheet`` with its reference (spreadsheet rows are 1-based)."""
    for index, row in sheet.frame.iterrows():
        yield _ref(sheet.path, sheet_name, int(index) + 1), row


def _note_text_frames(path: Path, sheet_name: str, first_data_row: int, positions: Sequence[int],
                      report: IntervalReport) -> None:
    """Note how many frame cells of a workbook sheet are stored as text (read like numbers; no value changes)."""
    if path.suffix.lower() == ".csv" or not sheet_name:
        return
    from python_calamine import CalamineWorkbook

    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name(sheet_name).to_python(skip_empty_area=False)
    count = sum(1 for row in rows[first_data_row:] for i in positions
                if i < len(row) and isinstance(row[i], str) and row[i].strip())
    if count:
        report.note(f"{path.name} [{sheet_name}]: {count} frame-number cells are stored as text; read as numbers")


def _positions(sheet: Sheet, names: Iterable[str | None]) -> list[int]:
    columns = list(sheet.frame.columns)
    return [columns.index(name) for name in names if name is not None]


def _table_on_any_sheet(path: Path, required: Sequence[Sequence[str]], preferred: Sequence[str]) -> tuple[Sheet, str]:
    """The first sheet (``preferred`` names first) that holds a header row with every ``required`` column."""
    names = sheet_names(path)
    ordered = [name for name in (_sheet_named(names, [wanted], None) for wanted in preferred) if name is not None]
    for name in ordered + [name for name in names if name not in ordered]:
        try:
            return read_table(path, required, sheet=name), name
        except ValueError:
            continue
    raise ValueError(f"{path}: no sheet of {names} has a header row with the columns {[list(r) for r in required]}")


# --- CAS(ME)^2 -------------------------------------------------------------------------------------------------

CASME_SQ_CODE_SHEETS = ("CASFEcode_final", "CASMEcode_final")
CASME_SQ_POSITIONS = ("subject", "expression", "onset", "apex", "offset", "au", "emotion", "type", "self_report")


def _read_casme_sq(path: Path, report: IntervalReport) -> list[_Cells]:
    """``CAS(ME)^2code_final.xlsx``: the headerless code sheet (9 columns by position) and the naming-rule sheets."""
    names = sheet_names(path)
    rule1, rule2 = _sheet_named(names, ["naming rule1"], 1), _sheet_named(names, ["naming rule2"], 2)
    if rule1 is None or rule2 is None:
        raise ValueError(f"{path}: CAS(ME)^2 video ids need the sheets 'naming rule1' (subject index -> folder sNN) "
                         f"and 'naming rule2' (expression name -> 4-digit code); the workbook has {names}")
    folders = _casme_sq_folders(path, rule1)
    codes = _casme_sq_codes(path, rule2, report)
    code_sheet = _sheet_named(names, CASME_SQ_CODE_SHEETS, 0) or ""
    grid = read_grid(path, code_sheet or 0)
    _note_text_frames(path, code_sheet, 0, [2, 3, 4], report)
    cells = []
    for index in range(len(grid)):
        values = dict(zip(CASME_SQ_POSITIONS, (grid.iat[index, i] if i < grid.shape[1] else None for i in range(9))))
        if all(value is None for value in values.values()):
            continue
        row = _ref(path, code_sheet, index + 1)
        number = _integer(values["subject"])
        if number is None and index == 0:
            report.note(f"{row}: header line skipped (the released sheet has none)")
            continue
        item = _casme_sq_cells(row, values, number, folders, codes, report)
        if item is not None:
            cells.append(item)
    return cells


def _casme_sq_cells(
    row: str, values: dict[str, object], number: int | None, folders: dict[int, str], codes: dict[str, str],
    report: IntervalReport,
) -> _Cells | None:
    expression = cell_text(values["expression"]) or ""
    code = codes.get(expression.rsplit("_", 1)[0].lower())
    kind = _expression_type(values["type"])
    if number is None or number not in folders:
        report.drop(row, f"subject index {cell_text(values['subject'])!r} is not in 'naming rule1'")
    elif code is None:
        report.drop(row, f"expression {expression!r}: its name before the last '_' is not in 'naming rule2'")
    elif kind is None:
        report.drop(row, f"type {cell_text(values['type'])!r} is neither micro- nor macro-expression")
    else:
        folder = folders[number]
        return _Cells(row, folder, f"{folder}_{code}", kind, values["onset"], values["offset"], values["apex"],
                      emotion=_lower(values["emotion"]), au=cell_text(values["au"]))
    return None


def _casme_sq_folders(path: Path, sheet: str) -> dict[int, str]:
    """``naming rule1``: subject index (the row's last integer) -> subject folder (the ``sNN`` cell)."""
    grid = read_grid(path, sheet)
    folders: dict[int, str] = {}
    for index in range(len(grid)):
        cells = [cell for cell in grid.iloc[index] if cell is not None]
        folder = next((cell.lower() for cell in cells if re.fullmatch(r"s\d+", cell, re.IGNORECASE)), None)
        numbers = [number for number in map(_integer, cells) if number is not None]
        if folder is None or not numbers:
            continue
        if folders.setdefault(numbers[-1], folder) != folder:
            raise ValueError(f"{path} [{sheet}] row {index + 1}: subject index {numbers[-1]} maps to {folder} here "
                             f"and to {folders[numbers[-1]]} above")
    if not folders:
        raise ValueError(f"{path} [{sheet}]: no row holds a folder code (sNN) and a subject index")
    return folders


def _casme_sq_codes(path: Path, sheet: str, report: IntervalReport) -> dict[str, str]:
    """``naming rule2``: expression name (``disgust1``, lower case) -> 4-digit video code (``0101``, stored as text)."""
    grid = read_grid(path, sheet)
    codes: dict[str, str] = {}
    for index in range(len(grid)):
        cells = [cell for cell in grid.iloc[index] if cell is not None]
        code = next((cell for cell in cells if _integer(cell) is not None), None)
        name = next((cell.lower() for cell in cells if _integer(cell) is None), None)
        if code is None or name is None:
            continue
        padded = f"{_integer(code):04d}"
        if padded != code:
            report.note(f"{path.name} [{sheet}] row {index + 1}: video code {code!r} read as {padded!r}")
        if codes.setdefault(name, padded) != padded:
            raise ValueError(f"{path} [{sheet}] row {index + 1}: {name!r} maps to {padded} here and to "
                             f"{codes[name]} above")
    if not codes:
        raise ValueError(f"{path} [{sheet}]: no row holds a 4-digit video code and an expression name")
    return codes


# --- SAMM Long Videos ------------------------------------------------------------------------------------------

SAMM_LV_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("Onset", "Onset Frame"),
    "apex": ("Apex", "Apex Frame"),
    "offset": ("Offset", "Offset Frame"),
    "type": ("Type",),
    "au": ("Action Units", "AU"),
}
_SAMM_REQUIRED = ("subject", "filename", "onset", "offset", "type")


def _read_samm_lv(path: Path, report: IntervalReport) -> list[_Cells]:
    """``SAMM_LongVideos_V{1,2,3}_Release.xlsx``: the sheet and header row are located (V1/V3: notes on rows 1-9,
    header on row 10, sheet ``FACS_Movement_Only`` or ``Sheet1``; the later copy: header on row 1)."""
    sheet, sheet_name = _table_on_any_sheet(path, [SAMM_LV_COLUMNS[key] for key in _SAMM_REQUIRED],
                                            ("FACS_Movement_Only", "Sheet1"))
    report.note(f"{path.name}: sheet {sheet_name!r}, header on row {sheet.header_row}")
    names = {key: column(sheet, aliases, required=key in _SAMM_REQUIRED) for key, aliases in SAMM_LV_COLUMNS.items()}
    _note_text_frames(path, sheet_name, sheet.header_row, _positions(sheet, [names["onset"], names["apex"],
                                                                              names["offset"]]), report)
    cells = []
    for row, values in _rows(sheet, sheet_name):
        ids = _samm_ids(values[names["subject"]], values[names["filename"]])
        kind = _expression_type(values[names["type"]])
        if isinstance(ids, str):
            report.drop(row, ids)
        elif kind is None:
            report.drop(row, f"type {cell_text(values[names['type']])!r} is neither Micro nor Macro")
        else:
            apex = values[names["apex"]] if names["apex"] else None
            cells.append(_Cells(row, ids[0], ids[1], kind, values[names["onset"]], values[names["offset"]], apex,
                                has_apex=names["apex"] is not None,
                                au=cell_text(values[names["au"]]) if names["au"] else None,
                                clip=cell_text(values[names["filename"]])))
    return cells


def _fill_samm_lv_emotions(records: list[dict[str, object]], folder: Path | None, report: IntervalReport) -> None:
    """Emotions of the micro-expressions from the SAMM micro-expression sheet (``SAMM_Micro_FACS_Codes_v2.xlsx``)
    put beside the long-video sheet, matched on the clip name (``006_1_2``), as MEAN joins them: the long-video
    sheet has no emotion column. A clip name that two rows of the micro-expression sheet share is not used."""
    path = _companion(folder, SAMM_ME_PATTERNS, "SAMM micro-expression", report)
    if path is None:
        return
    sheet = read_table(path, [SAMM_ME_COLUMNS["clip"], SAMM_ME_COLUMNS["emotion"]])
    clip_column, emotion_column = (column(sheet, SAMM_ME_COLUMNS[key]) for key in ("clip", "emotion"))
    emotions: dict[str, str | None] = {}
    shared: set[str] = set()
    for _, values in sheet.frame.iterrows():
        clip = _samm_clip(values[clip_column])
        if clip in emotions:
            shared.add(clip)
        emotions[clip] = _lower(values[emotion_column])
    if shared:
        report.note(f"{path.name}: clip names on more than one row, not used: {', '.join(sorted(shared))}")

    def emotion_of(record: dict[str, object]) -> dict[str, object] | None:
        clip = _samm_clip(record["clip"])
        return {"emotion": emotions[clip]} if clip in emotions and clip not in shared else None

    _fill_micro(records, emotion_of, path, report)


def _samm_clip(cell: object) -> str:
    """A SAMM clip name with its subject's leading zeros and the case as the SAMM sheets disagree on them
    (``6_1_2`` and ``006_1_2`` are one clip)."""
    text = (cell_text(cell) or "").strip().lower()
    head, _, rest = text.partition("_")
    return f"{int(head):03d}_{rest}" if head.isdigit() else text


def _samm_ids(subject_cell: object, filename_cell: object) -> tuple[str, str] | str:
    """(subject ``006``, video ``006_1``) from ``Subject`` and ``Filename`` (``006_1_1``), or the reason they fail."""
    try:
        subject = samm_subject(subject_cell)
    except ValueError as error:
        return str(error)
    filename = cell_text(filename_cell) or ""
    match = _SAMM_FILENAME.fullmatch(filename)
    if match is None:
        return f"Filename {filename!r} is not of the form SSS_V_N (006_1_1)"
    if int(match.group(1)) != int(subject):
        return f"Filename {filename!r} does not belong to subject {subject}"
    return subject, f"{subject}_{match.group(2)}"


# --- CAS(ME)^3 -------------------------------------------------------------------------------------------------

CASME3_EXPRESSION_SHEET = "AU+Emotion"
CASME3_BLINK_SHEET = "eye blink"
_CASME3_IDS = (("Subject",), ("Filename",), ("Onset",), ("Offset",))


def _read_casme3(path: Path, report: IntervalReport) -> list[_Cells]:
    """``CAS(ME)3_part_A_v2.xls``: sheet ``AU+Emotion`` (macro- and micro-expressions, ``Expression type``) and
    sheet ``eye blink`` (onset and offset only)."""
    names = sheet_names(path)
    expression_sheet = _sheet_named(names, [CASME3_EXPRESSION_SHEET], 0) or ""
    sheet = read_table(path, [*_CASME3_IDS, ("Expression type",)], sheet=expression_sheet or 0)
    cells = list(_casme3_cells(sheet, expression_sheet, column(sheet, ("Expression type",)), report))
    blink_sheet = _sheet_named(names, [CASME3_BLINK_SHEET], None)
    if blink_sheet is None:
        report.note(f"{path.name}: no {CASME3_BLINK_SHEET!r} sheet; no blinks read")
    else:
        cells += _casme3_cells(read_table(path, _CASME3_IDS, sheet=blink_sheet), blink_sheet, None, report)
    return cells


def _casme3_cells(sheet: Sheet, sheet_name: str, type_column: str | None, report: IntervalReport) -> Iterator[_Cells]:
    names = {key: column(sheet, (key,), required=key not in ("Apex", "AU")) for key in
             ("Subject", "Filename", "Onset", "Apex", "Offset", "AU")}
    _note_text_frames(sheet.path, sheet_name, sheet.header_row,
                      _positions(sheet, [names["Onset"], names["Apex"], names["Offset"]]), report)
    for row, values in _rows(sheet, sheet_name):
        ids = _casme3_ids(row, values[names["Subject"]], values[names["Filename"]], report)
        if ids is None:
            continue
        kind = _expression_type(values[type_column]) if type_column else "blink"
        if kind is None:
            report.drop(row, f"Expression type {cell_text(values[type_column])!r} is neither micro nor macro")
            continue
        apex = values[names["Apex"]] if names["Apex"] else None
        yield _Cells(row, ids[0], f"{ids[0]}_{ids[1]}", kind, values[names["Onset"]], values[names["Offset"]], apex,
                     has_apex=names["Apex"] is not None, au=cell_text(values[names["AU"]]) if names["AU"] else None)


def _casme3_ids(row: str, subject_cell: object, letter_cell: object, report: IntervalReport) -> tuple[str, str] | None:
    try:
        subject, letter = casme3_subject(subject_cell), casme3_clip(letter_cell)
    except ValueError as error:
        report.drop(row, str(error))
        return None
    for name, written, normalised in (("Subject", cell_text(subject_cell), subject),
                                      ("Filename", cell_text(letter_cell), letter)):
        if written != normalised:
            report.repair(row, name, written, "name-case", normalised)
    return subject, letter


def _fill_casme3_emotions(records: list[dict[str, object]], folder: Path | None, report: IntervalReport) -> None:
    """Emotions of the micro-expressions from the ME label sheet (``..._ME_label_JpgIndex_v2.xlsx``, sheet ``label``)
    beside the v2 sheet, matched on (video, onset), else on (video, offset); a key that two label rows share is not
    used."""
    label = _companion(folder, CASME3_ME_LABEL_PATTERNS["v2"], "CAS(ME)^3 Part A ME label", report)
    if label is None:
        return
    sheet = read_table(label, [*_CASME3_IDS, ("emotion",)], sheet=_sheet_named(sheet_names(label), ["label"], 0) or 0)
    names = {key: column(sheet, (key,)) for key in ("Subject", "Filename", "Onset", "Offset", "emotion")}
    emotions: dict[tuple[str, str, int | None], str | None] = {}
    shared: set[tuple[str, str, int | None]] = set()
    for _, values in sheet.frame.iterrows():
        try:
            video = f"{casme3_subject(values[names['Subject']])}_{casme3_clip(values[names['Filename']])}"
        except ValueError:
            continue
        for end in ("Onset", "Offset"):
            key = (video, end, _frame(values[names[end]]).value)
            if key in emotions:
                shared.add(key)
            emotions[key] = _lower(values[names["emotion"]])
    usable = {key: emotion for key, emotion in emotions.items() if key not in shared}

    def emotion_of(record: dict[str, object]) -> dict[str, object] | None:
        for end in ("Onset", "Offset"):
            key = (str(record["video"]), end, record[end.lower()])
            if key in usable:
                return {"emotion": usable[key]}
        return None

    _fill_micro(records, emotion_of, label, report)


def _fill_micro(records: list[dict[str, object]], lookup: Callable[[dict[str, object]], dict[str, object] | None],
                source: Path, report: IntervalReport) -> None:
    """Update each micro-expression record with ``lookup(record)`` (None: not found) and note how many matched."""
    wanted = [record for record in records if record["type"] == "micro"]
    missing = []
    for record in wanted:
        found = lookup(record)
        if found is None:
            missing.append(str(record["source"]))
        else:
            record.update(found)
    report.note(f"emotions of {len(wanted) - len(missing)} of {len(wanted)} micro-expressions from {source.name}"
                + (f"; none found for {', '.join(missing)}" if missing else ""))


def _companion(folder: Path | None, patterns: Sequence[str], what: str, report: IntervalReport) -> Path | None:
    if folder is None:
        report.note(f"the sheet was given as a file: {what} sheet not looked for, emotions left empty")
        return None
    try:
        return find_annotation(folder, patterns, what)[0]
    except FileNotFoundError:
        report.note(f"no {what} sheet under {folder}: emotions left empty")
        return None


CASME3C_SHEET = "organize"
CASME3C_TYPES = {"1": "micro", "0": "macro"}


def _read_casme3c(path: Path, report: IntervalReport) -> list[_Cells]:
    """``CAS(ME)3_part_C.xls``, sheet ``organize``: Subject, Onset, Offset, diff, Exp_type (1 micro, 0 macro), risk."""
    sheet_name = _sheet_named(sheet_names(path), [CASME3C_SHEET], 0) or ""
    sheet = read_table(path, [("Subject",), ("Onset",), ("Offset",), ("Exp_type",)], sheet=sheet_name or 0)
    names = {key: column(sheet, (key,)) for key in ("Subject", "Onset", "Offset", "Exp_type")}
    _note_text_frames(path, sheet_name, sheet.header_row, _positions(sheet, [names["Onset"], names["Offset"]]), report)
    report.note("Part C: Exp_type 1 read as micro-expression and 0 as macro-expression; onset and offset are positions "
                "in the sorted frame listing of the subject's video, not frame file numbers")
    cells = []
    for row, values in _rows(sheet, sheet_name):
        kind = CASME3C_TYPES.get(str(_integer(values[names["Exp_type"]])))
        try:
            subject = plain_id(values[names["Subject"]], "CAS(ME)^3 Part C subject", pad=2)
        except ValueError as error:
            report.drop(row, str(error))
            continue
        if kind is None:
            report.drop(row, f"Exp_type {cell_text(values[names['Exp_type']])!r} is neither 1 (micro) nor 0 (macro)")
            continue
        cells.append(_Cells(row, subject, subject, kind, values[names["Onset"]], values[names["Offset"]],
                            has_apex=False))
    return cells


def _fill_casme3c_emotions(records: list[dict[str, object]], folder: Path | None, report: IntervalReport) -> None:
    """Emotion and AUs of the micro-expressions from ``CAS(ME)3_part_C_ME.xlsx`` (sheet ``mockCrimeME``), matched on
    (subject, onset, offset)."""
    path = _companion(folder, CASME3C_ME_PATTERNS, "CAS(ME)^3 Part C ME", report)
    if path is None:
        return
    sheet = read_table(path, [("sub",), ("onset",), ("offset",), ("emotion",)],
                       sheet=_sheet_named(sheet_names(path), ["mockCrimeME"], 0) or 0)
    names = {key: column(sheet, (key,), required=key != "au") for key in ("sub", "onset", "offset", "emotion", "au")}
    found: dict[tuple[object, ...], tuple[str | None, str | None]] = {}
    for _, values in sheet.frame.iterrows():
        try:
            subject = plain_id(values[names["sub"]], "CAS(ME)^3 Part C subject", pad=2)
        except ValueError:
            continue
        key = (subject, _frame(values[names["onset"]]).value, _frame(values[names["offset"]]).value)
        found[key] = (_lower(values[names["emotion"]]), cell_text(values[names["au"]]) if names["au"] else None)
    matched: set[tuple[object, ...]] = set()

    def emotion_and_au(record: dict[str, object]) -> dict[str, object] | None:
        key = (record["subject"], record["onset"], record["offset"])
        if key not in found:
            return None
        matched.add(key)
        return {"emotion": found[key][0], "au": found[key][1]}

    _fill_micro(records, emotion_and_au, path, report)
    unused = len(set(found) - matched)
    if unused:
        report.note(f"{path.name}: {unused} MEs have no interval in the {CASME3C_SHEET!r} sheet and are not used")


# --- registry and entry points ---------------------------------------------------------------------------------

SAMM_LV_PATTERNS: tuple[str, ...] = (
    *(rf"samm_?long_?videos?_?{version}.*{_ANNOTATION_SUFFIX}" for version in ("v3", "v2", "v1")),
    rf"samm_?long_?videos?.*{_ANNOTATION_SUFFIX}",
    rf"samm_?lv.*{_ANNOTATION_SUFFIX}",
)
CASME3_PATTERNS: tuple[str, ...] = tuple(rf"cas\(me\)\^?3_?part_?a_?{v}{_ANNOTATION_SUFFIX}" for v in ("v2", "v1"))
CASME3C_PATTERNS: tuple[str, ...] = (rf"cas\(me\)\^?3_?part_?c{_ANNOTATION_SUFFIX}",)
_DATASETS: Mapping[str, SpottingDataset] = {
    dataset.name: dataset
    for dataset in (
        SpottingDataset("casme_sq", "CAS(ME)^2 long videos (CAS(ME)^2code_final.xlsx and its naming-rule sheets)",
                        30.0, (*CASME_SQ_PATTERNS, rf"casme_?sq_?gt{_ANNOTATION_SUFFIX}"), _read_casme_sq),
        SpottingDataset("samm_lv", "SAMM Long Videos (SAMM_LongVideos_V1/V2/V3_Release.xlsx; emotions from the SAMM "
                        "micro-expression sheet beside it)", 200.0, SAMM_LV_PATTERNS, _read_samm_lv,
                        _fill_samm_lv_emotions),
        SpottingDataset("casme3", "CAS(ME)^3 Part A long videos: macro, micro and eye blinks (CAS(ME)3_part_A_v2.xls)",
                        30.0, CASME3_PATTERNS, _read_casme3, _fill_casme3_emotions),
        SpottingDataset("casme3c", "CAS(ME)^3 Part C mock-crime videos (CAS(ME)3_part_C.xls, sheet organize)", 30.0,
                        CASME3C_PATTERNS, _read_casme3c, _fill_casme3c_emotions),
    )
}


def available_spotting_datasets() -> dict[str, str]:
    """Names accepted by ``read_intervals``, each with its description and frame rate."""
    return {name: f"{dataset.description}, {dataset.fps:g} fps" for name, dataset in _DATASETS.items()}


def get_spotting_dataset(name: str) -> SpottingDataset:
    """The registered spotting reader ``name``; ValueError lists the names."""
    if name not in _DATASETS:
        raise ValueError(f"unknown spotting dataset {name!r}; available: {', '.join(_DATASETS)}")
    return _DATASETS[name]


def read_intervals_with_report(name: str, root: str | Path) -> tuple[pd.DataFrame, IntervalReport]:
    """The annotated intervals of dataset ``name`` (see ``available_spotting_datasets``) and the report of repairs.

    root: the folder holding the annotation sheet (searched by file-name pattern up to 3 levels down; frames are
    optional and not looked at) or the sheet file itself (companion sheets, such as CAS(ME)^3's ME label sheet with
    the emotions, are then not looked for). Raises FileNotFoundError when there is no sheet and ValueError naming the
    file, sheet or row when the sheet cannot be read.
    """
    dataset = get_spotting_dataset(name)
    report = IntervalReport(dataset=name)
    path, folder = _locate(Path(root).expanduser(), dataset, report)
    report.file = path
    records = [record for record in (_resolve(cells, report) for cells in dataset.read(path, report)) if record]
    if dataset.enrich is not None:
        dataset.enrich(records, folder, report)
    for record in records:
        record.update(dataset=name, fps=dataset.fps)
    return _interval_table(records), report


def read_intervals(name: str, root: str | Path) -> pd.DataFrame:
    """``read_intervals_with_report`` without the report; a SpottingWarning says how many rows were repaired or
    dropped."""
    table, report = read_intervals_with_report(name, root)
    if report.repairs or report.dropped:
        warnings.warn(f"{name}: {len(table)} intervals, {len(report.repairs)} repairs, {len(report.dropped)} rows "
                      "dropped (see read_intervals_with_report)", SpottingWarning, stacklevel=2)
    return table


def _locate(root: Path, dataset: SpottingDataset, report: IntervalReport) -> tuple[Path, Path | None]:
    if root.is_file():
        return root, None
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset.name}: {root} is neither a folder nor an annotation file")
    path, others = find_annotation(root, dataset.patterns, dataset.description)
    if others:
        report.note(f"using {path.name}; also found {', '.join(p.name for p in others)}")
    return path, root


def _interval_table(records: list[dict[str, object]]) -> pd.DataFrame:
    table = pd.DataFrame.from_records(records, columns=list(INTERVAL_COLUMNS))
    return table.astype({"onset": "int64", "offset": "int64", "apex": "Int64", "fps": "float64"})


def validate_intervals(
    table: pd.DataFrame, what: str, columns: Sequence[str] = ("video", "onset", "offset", "type")
) -> pd.DataFrame:
    """A copy of ``table`` with integer ``onset``/``offset``, text ``video`` and lower-case ``type``.

    Raises ValueError naming ``what`` and the row (index label) when a column is missing, a frame is not an integer,
    the offset precedes the onset, a video id is empty or a type is not one of ``INTERVAL_TYPES``.
    """
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{what}: expected a pandas DataFrame, got {type(table).__name__}")
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; columns are {list(table.columns)}")
    result = table.copy()
    for name in ("onset", "offset"):
        if name in columns:
            result[name] = _integer_column(table[name], what, name)
    if "onset" in columns and "offset" in columns:
        _fail_at(result["offset"] < result["onset"], table, what, "offset before onset")
    if "video" in columns:
        result["video"] = table["video"].map(lambda value: cell_text(value) or "")
        _fail_at(result["video"] == "", table, what, "empty video id")
    if "type" in columns:
        result["type"] = table["type"].map(lambda value: (cell_text(value) or "").lower())
        _fail_at(~result["type"].isin(INTERVAL_TYPES), table, what, f"type not one of {list(INTERVAL_TYPES)}")
    return result


def _integer_column(values: pd.Series, what: str, name: str) -> pd.Series:
    if values.map(lambda value: isinstance(value, bool)).any():
        _fail_at(values.map(lambda value: isinstance(value, bool)), values.to_frame(), what, f"{name} is a boolean")
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers.fillna(0) % 1 != 0)
    _fail_at(bad, values.to_frame(), what, f"{name} is not an integer frame number")
    return numbers.astype("int64")


def _fail_at(mask: pd.Series, table: pd.DataFrame, what: str, problem: str) -> None:
    if mask.any():
        label = mask[mask].index[0]
        raise ValueError(f"{what} row {label}: {problem} ({table.loc[label].to_dict()}); {int(mask.sum())} such rows")
