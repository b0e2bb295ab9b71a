"""MEGC file formats for spotting results (docs/SPOTTING.md).

- MEGC2019/2020 log: a database label line (``1`` = SAMM Long Videos, ``2`` = CAS(ME)^2), then one line per item
  ``video GT_onset GT_offset pred_onset pred_offset TP|FP|FN`` with ``-`` for a missing side, e.g.
  ``006_1 2324 2403 2310 2395 TP``; a file may hold several label blocks. Video ids are written as the table gives
  them (the MEGC2020 baseline's log writes CAS(ME)^2 videos without the ``s``: ``15_0101``).
- MEGC2022/2023 CSV: ``vid,onset,offset,type`` (2023; 2022 writes ``vid,pred_onset,pred_offset,type``) with ``type``
  ``me`` (micro) or ``mae`` (macro), e.g. ``dzw_d1,6,46,mae``.
- STR CSV (MEGC2024/2025, STRS-Metric): ``subject,video,onset,offset,emotion``, e.g. ``1,EP02_01f,45,85,happiness``.

Readers return tables in micronbert's terms (``video``, ``onset``, ``offset``, ``type`` ``micro``/``macro``) and raise
ValueError naming the file and line at fault; writers validate the table and write through an atomic rename.
"""
from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pandas as pd

from micronbert.io import write_text_atomically
from micronbert.spotting.intervals import validate_intervals
from micronbert.spotting.metric import LOG_RESULTS

LOG_DATABASES: Mapping[int, str] = {1: "samm_lv", 2: "casme_sq"}
LOG_COLUMNS: tuple[str, ...] = ("video", "gt_onset", "gt_offset", "pred_onset", "pred_offset", "result")
MEGC_CSV_TYPES: Mapping[str, str] = {"me": "micro", "mae": "macro"}
MEGC_CSV_HEADERS: Mapping[str, tuple[str, ...]] = {
    "2023": ("vid", "onset", "offset", "type"),
    "2022": ("vid", "pred_onset", "pred_offset", "type"),
}
STR_COLUMNS: tuple[str, ...] = ("subject", "video", "onset", "offset", "emotion")
_FRAME = re.compile(r"\d+")
_CSV_UNSAFE = re.compile(r"[,\"\r\n]")

PathLike = str | os.PathLike[str]


# --- MEGC2019/2020 log -----------------------------------------------------------------------------------------


def read_spotting_log(path: PathLike) -> dict[int, pd.DataFrame]:
    """The blocks of a MEGC2019/2020 log: database label -> table with ``LOG_COLUMNS`` (frames as Int64, <NA> for
    ``-``). ValueError names the line that breaks the format."""
    path = Path(path)
    blocks: dict[int, list[tuple[object, ...]]] = {}
    current: int | None = None
    for number, tokens in _lines(path):
        where = f"{path}:{number}"
        if len(tokens) == 1:
            current = _database_label(tokens[0], where)
            if current in blocks:
                raise ValueError(f"{where}: database label {current} appears twice")
            blocks[current] = []
        elif current is None:
            raise ValueError(f"{where}: the log must start with a database label line ({_labels_text()})")
        else:
            blocks[current].append(_log_entry(tokens, where))
    if not blocks:
        raise ValueError(f"{path}: empty log (expected a database label line, {_labels_text()})")
    return {label: _log_table(rows) for label, rows in blocks.items()}


def write_spotting_log(path: PathLike, blocks: Mapping[int, pd.DataFrame]) -> Path:
    """Write a MEGC2019/2020 log: for each database label (``LOG_DATABASES``) its line, then one line per row of its
    table (``LOG_COLUMNS``; ``spotting_log`` builds them). ValueError names the block and row at fault."""
    lines = []
    for label, table in blocks.items():
        _database_label(str(label), f"block {label!r}")
        missing = [name for name in LOG_COLUMNS if name not in table.columns]
        if missing:
            raise ValueError(f"log block {label}: missing column(s) {missing}")
        lines.append(str(label))
        for index, row in table.iterrows():
            entry = [_log_video(row["video"], label, index)]
            entry += [_log_frame(row[name], label, index, name) for name in LOG_COLUMNS[1:5]]
            _log_entry([*entry, str(row["result"])], f"log block {label} row {index}")
            lines.append(" ".join([*entry, str(row["result"])]))
    return write_text_atomically(path, "\n".join(lines) + "\n")


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a UTF-8 text file ({error})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line.split()


def _labels_text() -> str:
    return ", ".join(f"{label} = {name}" for label, name in LOG_DATABASES.items())


def _database_label(token: str, where: str) -> int:
    if not token.isdigit() or int(token) not in LOG_DATABASES:
        raise ValueError(f"{where}: {token!r} is not a database label ({_labels_text()})")
    return int(token)


def _log_entry(tokens: Sequence[str], where: str) -> tuple[object, ...]:
    if len(tokens) != len(LOG_COLUMNS):
        raise ValueError(f"{where}: expected 'video GT_onset GT_offset pred_onset pred_offset TP|FP|FN', "
                         f"got {' '.join(tokens)!r}")
    video, *frames, result = tokens
    if result not in LOG_RESULTS:
        raise ValueError(f"{where}: result {result!r} is not one of {list(LOG_RESULTS)}")
    values = [None if frame == "-" else _frame_number(frame, where) for frame in frames]
    gt, pred = values[:2], values[2:]
    for name, ends in (("GT", gt), ("predicted", pred)):
        if (ends[0] is None) != (ends[1] is None):
            raise ValueError(f"{where}: the {name} interval has one end only")
        if ends[0] is not None and ends[1] < ends[0]:
            raise ValueError(f"{where}: the {name} offset {ends[1]} precedes its onset {ends[0]}")
    expected = {"TP": (True, True), "FP": (False, True), "FN": (True, False)}[result]
    if (gt[0] is not None, pred[0] is not None) != expected:
        raise ValueError(f"{where}: a {result} line needs " + {"TP": "both intervals", "FP": "a predicted interval "
                         "and '-' for GT", "FN": "a GT interval and '-' for the prediction"}[result])
    return (video, *values, result)


def _frame_number(token: str, where: str) -> int:
    if not _FRAME.fullmatch(token):
        raise ValueError(f"{where}: {token!r} is not a frame number or '-'")
    return int(token)


def _log_table(rows: list[tuple[object, ...]]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(LOG_COLUMNS))
    return table.astype({name: "Int64" for name in LOG_COLUMNS[1:5]})


def _log_video(value: object, label: int, index: object) -> str:
    text = str(value).strip()
    if not text or re.search(r"\s", text):
        raise ValueError(f"log block {label} row {index}: video id {value!r} is empty or holds spaces")
    return text


def _log_frame(value: object, label: int, index: object, name: str) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "-"
    number = pd.to_numeric(pd.Series([value], dtype=object), errors="coerce").iloc[0]
    if isinstance(value, bool) or pd.isna(number) or number % 1 or number < 0:
        raise ValueError(f"log block {label} row {index}: {name} {value!r} is not a frame number")
    return str(int(number))


# --- MEGC2022/2023 CSV -----------------------------------------------------------------------------------------


def read_megc_csv(path: PathLike) -> pd.DataFrame:
    """A MEGC2022/2023 prediction CSV (header ``vid,onset,offset,type`` or ``vid,pred_onset,pred_offset,type``) as a
    table ``video, onset, offset, type`` (``micro``/``macro``)."""
    path = Path(path)
    rows = []
    for number, values in _csv_rows(path, list(MEGC_CSV_HEADERS.values())):
        where = f"{path}:{number}"
        kind = MEGC_CSV_TYPES.get(values[3].strip().lower())
        if kind is None:
            raise ValueError(f"{where}: type {values[3]!r} is not one of {list(MEGC_CSV_TYPES)}")
        onset, offset = (_csv_frame(value, where) for value in values[1:3])
        if offset < onset:
            raise ValueError(f"{where}: offset {offset} precedes onset {onset}")
        rows.append((_csv_text(values[0], "vid", where), onset, offset, kind))
    table = pd.DataFrame(rows, columns=["video", "onset", "offset", "type"])
    return table.astype({"onset": "int64", "offset": "int64"})


def write_megc_csv(path: PathLike, table: pd.DataFrame, style: str = "2023") -> Path:
    """Write ``table`` (``video``, ``onset``, ``offset``, ``type`` micro/macro) as a MEGC CSV; style ``2023``
    (``vid,onset,offset,type``) or ``2022`` (``vid,pred_onset,pred_offset,type``)."""
    if style not in MEGC_CSV_HEADERS:
        raise ValueError(f"unknown MEGC CSV style {style!r}; choose one of {list(MEGC_CSV_HEADERS)}")
    checked = validate_intervals(table, "MEGC CSV table")
    codes = {kind: code for code, kind in MEGC_CSV_TYPES.items()}
    unknown = checked[~checked["type"].isin(list(codes))]
    if len(unknown):
        raise ValueError(f"MEGC CSV table row {unknown.index[0]}: type {unknown['type'].iloc[0]!r} has no MEGC code "
                         f"(only {list(codes)})")
    _check_frames_and_text(checked, ["video"], "MEGC CSV table")
    rows = zip(checked["video"], checked["onset"], checked["offset"], checked["type"].map(codes))
    return write_text_atomically(path, _csv_text_of(MEGC_CSV_HEADERS[style], rows))


# --- STR CSV ---------------------------------------------------------------------------------------------------


def read_str_csv(path: PathLike) -> pd.DataFrame:
    """A spot-then-recognise CSV (header ``subject,video,onset,offset,emotion``) as a table with those columns."""
    path = Path(path)
    rows = []
    for number, values in _csv_rows(path, [STR_COLUMNS]):
        where = f"{path}:{number}"
        onset, offset = (_csv_frame(value, where) for value in values[2:4])
        if offset < onset:
            raise ValueError(f"{where}: offset {offset} precedes onset {onset}")
        subject, video, emotion = (_csv_text(values[i], STR_COLUMNS[i], where) for i in (0, 1, 4))
        rows.append((subject, video, onset, offset, emotion))
    return pd.DataFrame(rows, columns=list(STR_COLUMNS)).astype({"onset": "int64", "offset": "int64"})


def write_str_csv(path: PathLike, table: pd.DataFrame) -> Path:
    """Write ``table`` (``subject``, ``video``, ``onset``, ``offset``, ``emotion``) as a spot-then-recognise CSV."""
    checked = validate_intervals(table, "STR table", ("subject", "video", "onset", "offset", "emotion"))
    _check_frames_and_text(checked, ["subject", "video", "emotion"], "STR table")
    texts = {name: checked[name].map(lambda value: str(value).strip()) for name in ("subject", "video", "emotion")}
    rows = zip(texts["subject"], texts["video"], checked["onset"], checked["offset"], texts["emotion"])
    return write_text_atomically(path, _csv_text_of(STR_COLUMNS, rows))


# --- CSV helpers -----------------------------------------------------------------------------------------------


def _csv_rows(path: Path, headers: Sequence[Sequence[str]]) -> Iterator[tuple[int, list[str]]]:
    """The data rows of a CSV file with one of ``headers`` (line numbers 1-based)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a UTF-8 text file ({error})") from None
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise ValueError(f"{path}: empty file (expected the header {','.join(headers[0])})")
    number, header = lines[0]
    names = tuple(cell.strip().lower() for cell in next(csv.reader([header])))
    width = next((len(wanted) for wanted in headers if names == tuple(wanted)), None)
    if width is None:
        raise ValueError(f"{path}:{number}: header {header!r} is not one of {[','.join(h) for h in headers]}")
    for number, line in lines[1:]:
        values = next(csv.reader([line]))
        if len(values) != width:
            raise ValueError(f"{path}:{number}: expected {width} values, got {len(values)} in {line!r}")
        yield number, values


def _csv_frame(value: str, where: str) -> int:
    text = value.strip()
    if not _FRAME.fullmatch(text):
        raise ValueError(f"{where}: {value!r} is not a frame number (a non-negative integer)")
    return int(text)


def _csv_text(value: str, name: str, where: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError(f"{where}: {name} is empty")
    return text


def _check_frames_and_text(table: pd.DataFrame, text_columns: Sequence[str], what: str) -> None:
    negative = table[table["onset"] < 0]
    if len(negative):
        raise ValueError(f"{what} row {negative.index[0]}: onset {negative['onset'].iloc[0]} is negative")
    for name in text_columns:
        bad = table[name].map(lambda value: value is None or (not isinstance(value, str) and pd.isna(value))
                              or not str(value).strip() or bool(_CSV_UNSAFE.search(str(value))))
        if bad.any():
            label = bad[bad].index[0]
            raise ValueError(f"{what} row {label}: {name} {table.loc[label, name]!r} is empty or holds a comma, "
                             "quote or line break")


def _csv_text_of(header: Sequence[str], rows: Iterator[tuple[object, ...]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
