"""The common sample table that every dataset reader produces.

One row per micro-expression sample. Columns (``TABLE_COLUMNS``):

- ``dataset``: source database (``casme2``, ``samm``, ``smic``, ``casme3``, ...).
- ``subject``: subject id namespaced by the dataset (``casme2/sub01``, ``samm/006``).
- ``clip``: clip (material) name as an opaque string (``EP02_01f``, ``006_1_2``, ``a``).
- ``frames``: list of frame paths (str) from onset to offset, sorted by the trailing integer of the
  file stem; empty when frames were not looked up (annotation-only loads).
- ``onset``, ``apex``, ``offset``: frame numbers (the trailing integers of the frame files),
  nullable integers; missing only in annotation-only loads when the sheet value was unusable.
- ``fps``: frames per second (float, NaN when unknown).
- ``emotion``: normalised emotion name (lower case).
- ``action_units``: list of AU numbers (ints).
- ``label``: class index under the chosen scheme (nullable integer; missing without a scheme).
- ``apex_source``: ``annotated``, ``estimated`` (largest change from the onset frame) or
  ``midpoint`` (onset-offset midpoint); missing when the apex is missing.

Optional extra columns: ``au_raw`` (the AU cell as written, keeping side and intensity letters) and
``image`` (the path of a precomputed image of the sample, e.g. an onset-to-apex flow image or an apex
face crop, for samples read from image folders rather than frames; missing or a non-blank path).
A sample is identified by (dataset, subject, clip, onset): CAS(ME)^3 has many MEs per clip.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from micronbert.data.frames import frame_number

TABLE_COLUMNS: tuple[str, ...] = (
    "dataset",
    "subject",
    "clip",
    "frames",
    "onset",
    "apex",
    "offset",
    "fps",
    "emotion",
    "action_units",
    "label",
    "apex_source",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("au_raw", "image")
LIST_COLUMNS: tuple[str, ...] = ("frames", "action_units")
INT_COLUMNS: tuple[str, ...] = ("onset", "apex", "offset", "label")
STRING_COLUMNS: tuple[str, ...] = ("dataset", "subject", "clip", "emotion", "apex_source", "au_raw", "image")
APEX_SOURCES: frozenset[str] = frozenset({"annotated", "estimated", "midpoint"})
KEY_COLUMNS: tuple[str, ...] = ("dataset", "subject", "clip", "onset")
TABLE_FILE = "table.csv"  # what `micronbert prepare` writes into its output folder
REPORT_FILE = "prepare_report.json"  # beside it: what was read, dropped or repaired, and the class scheme


def sample_key(dataset: str, subject: str, clip: str, onset: object) -> str:
    """A readable sample identifier, e.g. ``casme3 casme3/spNO.1 a @355``."""
    onset_text = "?" if onset is None or pd.isna(onset) else str(int(onset))
    return f"{dataset} {subject} {clip} @{onset_text}"


@dataclass(frozen=True)
class DroppedSample:
    """A sample left out of the table, and why."""

    key: str
    reason: str


@dataclass
class LoadReport:
    """What a reader dropped, what it repaired or doubted (warnings) and general notes."""

    dataset: str
    dropped: list[DroppedSample] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def drop(self, key: str, reason: str) -> None:
        """Record that the sample ``key`` was left out for ``reason``."""
        self.dropped.append(DroppedSample(key, reason))

    def warn(self, message: str) -> None:
        """Record a repair, fallback or doubtful fact."""
        self.warnings.append(message)

    def note(self, message: str) -> None:
        """Record a general remark about the load (layout found, file used, ...)."""
        self.notes.append(message)

    def extend(self, other: LoadReport) -> None:
        """Append another report's entries (used by composite readers)."""
        self.dropped.extend(other.dropped)
        self.warnings.extend(other.warnings)
        self.notes.extend(other.notes)

    def drop_reasons(self) -> dict[str, int]:
        """How many samples were dropped for each reason."""
        counts: dict[str, int] = {}
        for item in self.dropped:
            counts[item.reason] = counts.get(item.reason, 0) + 1
        return counts

    def summary(self) -> str:
        """One paragraph for logs: counts of drops by reason, warnings and notes."""
        lines = [f"{self.dataset}: {len(self.dropped)} dropped, {len(self.warnings)} warnings"]
        lines += [f"  dropped {count}: {reason}" for reason, count in sorted(self.drop_reasons().items())]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def make_table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build a table with the standard columns and dtypes from row dicts.

    Missing optional entries default to empty lists / missing values; unknown keys are an error.
    """
    records = [dict(row) for row in rows]
    allowed = set(TABLE_COLUMNS) | set(OPTIONAL_COLUMNS)
    for index, record in enumerate(records):
        unknown = set(record) - allowed
        if unknown:
            raise ValueError(f"row {index} has unknown table columns: {sorted(unknown)}")
    has_optional = [name for name in OPTIONAL_COLUMNS if any(name in record for record in records)]
    columns = list(TABLE_COLUMNS) + has_optional
    data = {name: [record.get(name) for record in records] for name in columns}
    for name in LIST_COLUMNS:
        data[name] = [list(value) if value is not None else [] for value in data[name]]
    data["frames"] = [[str(path) for path in value] for value in data["frames"]]
    data["action_units"] = [[int(au) for au in value] for value in data["action_units"]]
    table = pd.DataFrame(data, columns=columns)
    return _apply_dtypes(table)


class TableCellError(ValueError):
    """A cell whose value does not fit its column's type; ``row`` counts the table's rows from 0."""

    def __init__(self, row: int, column: str, value: object, kind: str) -> None:
        super().__init__(f"row {row}, column {column}: {value!r} is not {kind}")
        self.row, self.column, self.value, self.kind = row, column, value, kind


def _converted(table: pd.DataFrame, name: str, convert: Callable[[Any], Any], kind: str) -> list[Any]:
    values = []
    for row, value in enumerate(table[name]):
        try:
            values.append(None if _missing(value) else convert(value))
        except (TypeError, ValueError):
            raise TableCellError(row, name, value, kind) from None
    return values


def _apply_dtypes(table: pd.DataFrame) -> pd.DataFrame:
    for name in INT_COLUMNS:
        table[name] = pd.array(_converted(table, name, int, "an integer"), dtype="Int64")
    table["fps"] = pd.Series(_converted(table, "fps", float, "a number"), index=table.index, dtype="float64")
    for name in STRING_COLUMNS:
        if name in table.columns:
            table[name] = pd.Series(
                [None if _missing(value) else str(value) for value in table[name]],
                index=table.index,
                dtype="object",
            )
    return table.reset_index(drop=True)


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def empty_table() -> pd.DataFrame:
    """A table with the standard columns and no rows."""
    return make_table([])


def validate_table(table: pd.DataFrame) -> None:
    """Check the structure and the per-sample invariants of a sample table.

    Raises ValueError naming the first offending sample. Invariants: all standard columns exist;
    subjects are namespaced by their dataset; sample keys are unique; where onset, apex and
    offset are all known, onset <= apex <= offset; a sample with frames has onset and offset, and
    its frames are sorted with numbers inside [onset, offset]; apex_source is a known value and
    set whenever the apex is; action units are integers; an ``image``, where given, is a non-blank path.
    """
    missing = [name for name in TABLE_COLUMNS if name not in table.columns]
    if missing:
        raise ValueError(f"sample table lacks columns {missing}")
    duplicated = table.duplicated(subset=list(KEY_COLUMNS), keep=False)
    if duplicated.any():
        first = table[duplicated].iloc[0]
        raise ValueError(
            "duplicate sample key "
            + sample_key(first["dataset"], first["subject"], first["clip"], first["onset"])
        )
    for row in table.itertuples(index=False):
        _validate_row(row)


def _validate_row(row: Any) -> None:
    key = sample_key(row.dataset, row.subject, row.clip, row.onset)
    if not isinstance(row.subject, str) or not row.subject.startswith(f"{row.dataset}/"):
        raise ValueError(f"{key}: subject {row.subject!r} is not namespaced by dataset {row.dataset!r}")
    onset, apex, offset = (None if _missing(v) else int(v) for v in (row.onset, row.apex, row.offset))
    if onset is not None and offset is not None and onset > offset:
        raise ValueError(f"{key}: onset {onset} after offset {offset}")
    if apex is not None:
        if onset is not None and apex < onset or offset is not None and apex > offset:
            raise ValueError(f"{key}: apex {apex} outside [{onset}, {offset}]")
        if row.apex_source not in APEX_SOURCES:
            raise ValueError(f"{key}: apex_source {row.apex_source!r} not in {sorted(APEX_SOURCES)}")
    elif not _missing(row.apex_source):
        raise ValueError(f"{key}: apex_source {row.apex_source!r} given without an apex")
    if not all(isinstance(au, int) for au in row.action_units):
        raise ValueError(f"{key}: action units must be integers, got {row.action_units!r}")
    if row.frames:
        _validate_frames(key, list(row.frames), onset, offset)
    image = getattr(row, "image", None)
    if not _missing(image) and (not isinstance(image, str) or not image.strip()):
        raise ValueError(f"{key}: image {image!r} is not a path")


def _validate_frames(key: str, frames: list[str], onset: int | None, offset: int | None) -> None:
    if onset is None or offset is None:
        raise ValueError(f"{key}: has frames but no onset/offset")
    numbers = [frame_number(path) for path in frames]
    if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
        raise ValueError(f"{key}: frames are not sorted by frame number")
    if numbers[0] < onset or numbers[-1] > offset:
        raise ValueError(f"{key}: frames {numbers[0]}..{numbers[-1]} outside [{onset}, {offset}]")


def save_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a sample table to CSV atomically; list columns are stored as JSON text."""
    validate_table(table)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    out = table.copy()
    for name in LIST_COLUMNS:
        out[name] = [json.dumps(list(value)) for value in out[name]]
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as stream:
            out.to_csv(stream, index=False)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by ``save_table`` and validate it."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"sample table not found: {source}")
    try:
        raw = pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""])
    except ValueError as error:  # pandas' empty-data and parser errors and UnicodeDecodeError all derive from it
        raise ValueError(f"{source}: not a readable CSV sample table ({type(error).__name__}: {error})") from None
    missing = [name for name in TABLE_COLUMNS if name not in raw.columns]
    if missing:
        raise ValueError(f"{source}: not a sample table, columns {missing} are missing")
    rows = []
    for index, record in enumerate(raw.to_dict(orient="records")):
        row = {name: record[name] for name in raw.columns if name in TABLE_COLUMNS or name in OPTIONAL_COLUMNS}
        for name in LIST_COLUMNS:
            row[name] = _parse_json_list(record[name], source, index, name)
        rows.append(row)
    try:
        table = make_table(rows)
    except TableCellError as error:
        raise ValueError(f"{source} row {error.row + 2}, column {error.column}: {error.value!r} is not "
                         f"{error.kind}") from None
    try:
        validate_table(table)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    return table


def _parse_json_list(text: object, source: Path, index: int, column: str) -> list:
    if _missing(text):
        return []
    try:
        value = json.loads(str(text))
    except json.JSONDecodeError as error:
        raise ValueError(f"{source} row {index + 2}, column {column}: invalid JSON list ({error})") from None
    if not isinstance(value, list):
        raise ValueError(f"{source} row {index + 2}, column {column}: expected a JSON list, got {text!r}")
    return value
