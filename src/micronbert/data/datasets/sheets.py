"""Annotation files as shipped: finding them, locating the header row, reading cells as text.

Every cell is read as text (DATASETS.md §2 rule 3) and converted by the parse helpers here, which
map unusable values to None instead of raising, so readers can fall back and report.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ANNOTATION_EXTENSIONS: tuple[str, ...] = (".xlsx", ".xlsm", ".xls", ".csv")
_MISSING_TEXT = frozenset({"", "/", "\\", "-", "nan", "none", "null", "n/a", "na", "#n/a"})
_INTEGER_TEXT = re.compile(r"[+-]?\d+(?:\.0*)?")
_FLOAT_TEXT = re.compile(r"[+-]?\d*\.\d+")


def normalise_name(text: object) -> str:
    """Lower-case alphanumerics of a header cell (``'Onset Frame'`` -> ``'onsetframe'``)."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def cell_text(value: object) -> str | None:
    """A cell as stripped text; None for empty or missing cells."""
    if value is None:
        return None
    if not isinstance(value, str) and pd.isna(value):
        return None
    text = str(value).strip()
    return text if text and text.lower() not in {"nan", "none"} else None


def find_annotation(
    root: Path, patterns: Sequence[str], what: str, max_depth: int = 3
) -> tuple[Path, list[Path]]:
    """The annotation file under ``root`` whose name matches the earliest of ``patterns``.

    ``patterns`` are case-insensitive regular expressions matched against the whole file name;
    earlier patterns are preferred (e.g. a v2 sheet over v1). Returns the chosen file and the
    other candidates (for a warning). Raises FileNotFoundError naming the root and patterns.
    """
    candidates = [p for p in _walk_files(root, max_depth) if p.suffix.lower() in ANNOTATION_EXTENSIONS]
    for pattern in patterns:
        regex = re.compile(pattern, re.IGNORECASE)
        matches = sorted(p for p in candidates if regex.fullmatch(p.name) and not p.name.startswith("~$"))
        if matches:
            others = [p for p in candidates if p not in matches[:1] and _matches_any(p.name, patterns)]
            return matches[0], others
    raise FileNotFoundError(
        f"no {what} annotation file found under {root} (searched {max_depth} levels for names "
        f"matching {list(patterns)} with extensions {list(ANNOTATION_EXTENSIONS)}); "
        "pass annotation=<path> to name it"
    )


def _matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(re.fullmatch(p, name, re.IGNORECASE) for p in patterns) and not name.startswith("~$")


def _walk_files(root: Path, max_depth: int) -> list[Path]:
    found: list[Path] = []
    level = [root]
    for _ in range(max_depth + 1):
        next_level: list[Path] = []
        for folder in level:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                continue
            for entry in entries:
                if entry.is_file():
                    found.append(entry)
                elif entry.is_dir() and not entry.name.startswith("."):
                    next_level.append(entry)
        level = next_level
    return found


def sheet_names(path: Path) -> list[str]:
    """Sheet names of a workbook (``['']`` for a CSV file)."""
    if path.suffix.lower() == ".csv":
        return [""]
    try:
        with pd.ExcelFile(path, engine=_engine(path)) as book:
            return [str(name) for name in book.sheet_names]
    except Exception as error:  # zipfile, openpyxl and calamine each raise their own types
        raise ValueError(f"{path}: not a readable {path.suffix} file ({type(error).__name__}: {error})") from None


def read_grid(path: Path, sheet: str | int = 0) -> pd.DataFrame:
    """All cells of one sheet as text (object dtype, None for empty), no header interpretation.

    Raises FileNotFoundError for a missing file and ValueError naming the file or sheet otherwise.
    """
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in ANNOTATION_EXTENSIONS:
        raise ValueError(f"unsupported annotation file type {suffix!r}: {path}")
    try:
        if suffix == ".csv":
            grid = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, skip_blank_lines=False,
                               encoding="utf-8-sig")
        else:
            grid = _read_sheet(path, sheet)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except _SheetNotFound as error:
        raise ValueError(f"{path}: {error}") from None
    except Exception as error:  # zipfile, openpyxl, calamine and the CSV parser each raise their own types
        raise ValueError(f"{path}: not a readable {suffix} file ({type(error).__name__}: {error})") from None
    grid = grid.astype(object).map(cell_text)
    grid.columns = range(grid.shape[1])
    return grid.reset_index(drop=True)


class _SheetNotFound(LookupError):
    pass


def _read_sheet(path: Path, sheet: str | int) -> pd.DataFrame:
    with pd.ExcelFile(path, engine=_engine(path)) as book:
        names = [str(name) for name in book.sheet_names]
        if (sheet not in names) if isinstance(sheet, str) else not 0 <= sheet < len(names):
            raise _SheetNotFound(f"sheet {sheet!r} not found; the workbook has {names}")
        return pd.read_excel(book, sheet_name=sheet, header=None, dtype=str)


def _engine(path: Path) -> str:
    return "calamine" if path.suffix.lower() == ".xls" else "openpyxl"


def choose_sheet(path: Path, preferred: Sequence[str]) -> str | int:
    """The first sheet whose name matches one of ``preferred`` (case-insensitive), else the first."""
    names = sheet_names(path)
    lowered = {normalise_name(name): name for name in names}
    for wanted in preferred:
        if normalise_name(wanted) in lowered:
            return lowered[normalise_name(wanted)]
    return 0


@dataclass(frozen=True)
class Sheet:
    """A table read below its located header row. ``rows`` keeps the spreadsheet row numbers."""

    path: Path
    frame: pd.DataFrame
    header_row: int

    def row_ref(self, index: int) -> str:
        """``file.xlsx row N`` for the data row at position ``index`` (1-based spreadsheet rows)."""
        return f"{self.path.name} row {self.frame.index[index] + 1}"


def read_table(
    path: Path, required: Sequence[Sequence[str]], sheet: str | int = 0, scan_rows: int = 40
) -> Sheet:
    """Read a sheet whose header row holds one alias of every entry of ``required``.

    The header is located by scanning the first ``scan_rows`` rows (SAMM v2 starts on row 14).
    Blank header cells become ``Unnamed: i`` as pandas would name them; fully blank data rows are
    removed. Raises ValueError naming the file when no row holds the required names.
    """
    grid = read_grid(path, sheet)
    header = locate_header(grid, required, scan_rows)
    if header is None:
        raise ValueError(
            f"{path}: no header row with columns {[list(r) for r in required]} in the first {scan_rows} rows"
        )
    names = [cell if cell is not None else f"Unnamed: {i}" for i, cell in enumerate(grid.iloc[header])]
    body = grid.iloc[header + 1 :].copy()
    body.columns = _unique_names(names)
    body = body.dropna(how="all")
    return Sheet(path=path, frame=body, header_row=header + 1)


def locate_header(grid: pd.DataFrame, required: Sequence[Sequence[str]], scan_rows: int = 40) -> int | None:
    """Index of the first row containing an alias of every required column, or None."""
    for index in range(min(scan_rows, len(grid))):
        cells = {normalise_name(cell) for cell in grid.iloc[index] if cell is not None}
        if all(any(normalise_name(alias) in cells for alias in aliases) for aliases in required):
            return index
    return None


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        count = seen.get(name, 0)
        unique.append(name if count == 0 else f"{name}.{count}")
        seen[name] = count + 1
    return unique


def column(sheet: Sheet, aliases: Sequence[str], required: bool = True) -> str | None:
    """The sheet's column whose normalised name equals one of ``aliases`` (in alias order)."""
    by_name = {normalise_name(name): name for name in sheet.frame.columns}
    for alias in aliases:
        if normalise_name(alias) in by_name:
            return by_name[normalise_name(alias)]
    if required:
        raise ValueError(f"{sheet.path}: no column named any of {list(aliases)}; columns are "
                         f"{list(sheet.frame.columns)}")
    return None


def read_sample_sheet(
    path: Path, columns: Mapping[str, Sequence[str]], sheet: str | int = 0
) -> tuple[Sheet, dict[str, str | None]]:
    """A per-sample annotation sheet and its column for each key of ``columns`` (key -> aliases).

    The header row is the one holding the ``subject``, ``clip``, ``onset`` and ``offset`` aliases;
    every column is required except ``action_units`` (None when absent).
    """
    table = read_table(path, [columns["subject"], columns["clip"], columns["onset"], columns["offset"]], sheet=sheet)
    names = {key: column(table, aliases, required=key != "action_units") for key, aliases in columns.items()}
    return table, names


@dataclass(frozen=True)
class ParsedNumber:
    """A parsed frame-number cell: the value (None when unusable) and a problem description."""

    value: int | None
    problem: str | None = None


def parse_frame_number(text: object, zero_is_missing: bool = False) -> ParsedNumber:
    """Parse a frame-number cell read as text.

    ``46``, ``46.0`` -> 46; empty, ``/``, ``\\``, ``-`` -> missing; a fraction such as ``46.5`` is
    truncated with a problem note; anything else is missing with a problem note. With
    ``zero_is_missing``, 0 is missing too (CAS(ME)^3, CAS(ME)^2 offsets).
    """
    raw = cell_text(text)
    if raw is None or raw.lower() in _MISSING_TEXT:
        return ParsedNumber(None, None if raw is None else f"{raw!r} means missing")
    if _INTEGER_TEXT.fullmatch(raw):
        value = int(float(raw))
    elif _FLOAT_TEXT.fullmatch(raw):
        value = int(float(raw))
        return ParsedNumber(value if value > 0 or not zero_is_missing else None, f"fractional frame {raw!r} truncated")
    else:
        return ParsedNumber(None, f"{raw!r} is not a frame number")
    if value < 0:
        return ParsedNumber(None, f"negative frame number {raw!r}")
    if value == 0 and zero_is_missing:
        return ParsedNumber(None, "0 means missing")
    return ParsedNumber(value)


_AU_NUMBER = re.compile(r"(\d+)")


def parse_action_units(text: object) -> tuple[list[int], str | None]:
    """AU numbers from a cell such as ``4+7``, ``R12 + R15``, ``L14A``, ``R4,5`` or ``AU12(k)``.

    Side prefixes (L, R, T, B) and intensity letters are dropped from the numbers (the raw text is
    kept in the table's ``au_raw`` column). When the cell offers alternatives (``12 or 14``) the
    first is used and a problem note is returned. Duplicates are removed, order kept.
    """
    raw = cell_text(text)
    if raw is None:
        return [], None
    problem = None
    cleaned = raw.replace("\uff0c", ",").replace("\u3001", ",")
    alternatives = re.split(r"\s+or\s+", cleaned, flags=re.IGNORECASE)
    if len(alternatives) > 1:
        problem = f"AU cell {raw!r} offers alternatives; the first one is used"
        cleaned = alternatives[0]
    units: list[int] = []
    for token in re.split(r"[+,;&\s]+", cleaned):
        for number in _AU_NUMBER.findall(token):
            if int(number) not in units:
                units.append(int(number))
    if not units and raw not in {"/", "-"}:
        problem = f"AU cell {raw!r} holds no AU number"
    return units, problem
