"""Turning annotation rows into the common sample table: parsing, fallbacks, frames, validation.

Readers describe each sample as a ``RawSample`` (cells as read, where its frames should be) and
``build_table`` applies the rules of DATASETS.md §2 that are the same for every dataset:
frame-number cells parsed from text with fallbacks instead of errors, interval checks, frame
look-up sorted by trailing integer, apex estimation where the apex is missing, and a report entry
for every repair and every dropped sample.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pandas as pd

from micronbert.data.datasets.apex import APEX_METHODS, resolve_apex
from micronbert.data.datasets.paths import clip_dir
from micronbert.data.datasets.schemes import normalise_emotion
from micronbert.data.datasets.sheets import Sheet, cell_text, find_annotation, parse_action_units, parse_frame_number
from micronbert.data.frames import frame_number, list_frames
from micronbert.data.table import LoadReport, make_table, sample_key

MISSING_APEX_CHOICES: tuple[str, ...] = (*APEX_METHODS, "drop")
MAX_PLAUSIBLE_SECONDS = 10.0
ROW_CELLS: tuple[str, ...] = ("onset", "apex", "offset", "emotion", "action_units")

_Ids = TypeVar("_Ids")


@dataclass(frozen=True)
class LoadOptions:
    """Options every reader honours.

    check_frames: look up the frames on disk (drop samples whose frames are missing); False builds
        the table from the annotation alone (``frames`` empty, missing apexes set to the midpoint).
    missing_apex: ``estimate`` (largest change from the onset, midpoint fallback), ``midpoint``, or
        ``drop`` (leave such samples out).
    annotation: explicit annotation file, instead of searching the dataset root by name pattern.
    fps: override the dataset's frame rate.
    """

    check_frames: bool = True
    missing_apex: str = "estimate"
    annotation: Path | None = None
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.missing_apex not in MISSING_APEX_CHOICES:
            raise ValueError(f"missing_apex must be one of {list(MISSING_APEX_CHOICES)}, got {self.missing_apex!r}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps!r}")


@dataclass(frozen=True)
class RawSample:
    """One annotated sample as a reader found it.

    ``onset``/``apex``/``offset`` are the cells as read (text or numbers). ``frames_dir`` is the
    folder holding the sample's frames (the clip, or the whole video for datasets whose folders
    hold several samples); None with ``frames_problem`` saying why it was not found.
    ``positions``: the cells are 1-based (``position_base``) positions in the sorted listing of
    ``frames_dir`` rather than frame numbers (CAS(ME)^3 Part C).
    """

    dataset: str
    subject: str
    clip: str
    onset: object
    apex: object
    offset: object
    emotion: object
    action_units: object = None
    fps: float | None = None
    frames_dir: Path | None = None
    frames_problem: str | None = None
    source: str = ""
    positions: bool = False
    position_base: int = 1
    zero_is_missing: bool = False
    label: object = None


@dataclass
class _Interval:
    onset: int | None
    apex: int | None
    offset: int | None
    problems: list[str] = field(default_factory=list)


def resolve_interval(onset: int | None, apex: int | None, offset: int | None) -> _Interval:
    """Repair an annotated interval by the documented fallbacks, listing each repair.

    Onset after offset: the value that disagrees with the apex becomes missing. Missing offset:
    the apex is used (CAS(ME)^2 / SAMM-LV convention for offset 0). Apex outside the interval:
    missing (it is then estimated).
    """
    result = _Interval(onset, apex, offset)
    on, ap, off = onset, apex, offset
    if on is not None and off is not None and on > off:
        if ap is not None and ap <= off:
            result.problems.append(f"onset {on} after apex {ap} and offset {off}; onset treated as missing")
            on = None
        elif ap is not None and ap >= on:
            result.problems.append(f"offset {off} before onset {on} and apex {ap}; offset treated as missing")
            off = None
        else:
            result.problems.append(f"onset {on} after offset {off}; both treated as missing")
            on = off = None
    if off is None and ap is not None and (on is None or ap >= on):
        result.problems.append(f"offset missing; apex {ap} used as offset")
        off = ap
    if ap is not None and ((on is not None and ap < on) or (off is not None and ap > off)):
        result.problems.append(f"apex {ap} outside [{on}, {off}]; treated as missing")
        ap = None
    result.onset, result.apex, result.offset = on, ap, off
    return result


class _FrameListings:
    """Listings of frame folders, each read once per build (many samples share a video folder)."""

    def __init__(self) -> None:
        self._cache: dict[Path, list[Path] | str] = {}

    def get(self, folder: Path) -> list[Path] | str:
        if folder not in self._cache:
            try:
                self._cache[folder] = list_frames(folder)
            except (OSError, ValueError) as error:
                self._cache[folder] = str(error)
        return self._cache[folder]


def build_table(samples: Iterable[RawSample], options: LoadOptions, report: LoadReport) -> pd.DataFrame:
    """The sample table for ``samples`` (without labels), recording drops and repairs in ``report``."""
    listings = _FrameListings()
    rows = []
    seen: set[tuple[str, str, str, object]] = set()
    for sample in samples:
        row = _build_row(sample, options, report, listings)
        if row is None:
            continue
        identity = (row["dataset"], row["subject"], row["clip"], row["onset"])
        if identity in seen:
            report.drop(_key(sample, row["onset"]), f"duplicate sample ({sample.source})")
            continue
        seen.add(identity)
        rows.append(row)
    return make_table(rows)


def _key(sample: RawSample, onset: object) -> str:
    return sample_key(sample.dataset, f"{sample.dataset}/{sample.subject}", sample.clip, onset)


def _parse_cells(sample: RawSample, report: LoadReport) -> tuple[int | None, int | None, int | None]:
    names = ("onset", "apex", "offset")
    parsed = [parse_frame_number(getattr(sample, name), zero_is_missing=sample.zero_is_missing) for name in names]
    key = _key(sample, parsed[0].value)
    for name, item in zip(names, parsed):
        if item.problem:
            report.warn(f"{key} ({sample.source}): {name} {item.problem}")
    return parsed[0].value, parsed[1].value, parsed[2].value


def _build_row(sample: RawSample, options: LoadOptions, report: LoadReport, listings: _FrameListings) -> dict | None:
    onset, apex, offset = _parse_cells(sample, report)
    frames: list[Path] = []
    listing: list[Path] = []
    if options.check_frames:
        found = _listing(sample, listings, report, onset)
        if found is None:
            return None
        listing = found
        if sample.positions:
            converted = _positions_to_numbers(sample, listing, (onset, apex, offset), report)
            if converted is None:
                return None
            onset, apex, offset = converted
    interval = resolve_interval(onset, apex, offset)
    key = _key(sample, interval.onset if interval.onset is not None else onset)
    for problem in interval.problems:
        report.warn(f"{key} ({sample.source}): {problem}")
    onset, apex, offset = interval.onset, interval.apex, interval.offset
    if onset is None or offset is None:
        if options.check_frames:
            report.drop(key, f"onset/offset unusable ({sample.source})")
            return None
        report.warn(f"{key} ({sample.source}): kept without a usable onset/offset (annotation only)")
    elif options.check_frames:
        frames = _select_frames(listing, onset, offset, key, report)
        if not frames:
            report.drop(key, f"no frame files between onset {onset} and offset {offset} in {sample.frames_dir}")
            return None
    apex_source: str | None = "annotated" if apex is not None else None
    if apex is None and onset is not None and offset is not None:
        if options.missing_apex == "drop":
            report.drop(key, "apex missing (missing_apex='drop')")
            return None
        estimate = resolve_apex(frames, onset, offset, options.missing_apex)
        if estimate.problem and options.check_frames:
            report.warn(f"{key}: {estimate.problem}")
        apex, apex_source = estimate.frame, estimate.source
    _warn_if_implausible(key, onset, offset, options.fps or sample.fps, report)
    units, au_problem = parse_action_units(sample.action_units)
    if au_problem:
        report.warn(f"{key} ({sample.source}): {au_problem}")
    emotion = normalise_emotion(sample.emotion)
    if emotion is None:
        report.warn(f"{key} ({sample.source}): emotion missing")
    return {
        "dataset": sample.dataset,
        "subject": f"{sample.dataset}/{sample.subject}",
        "clip": sample.clip,
        "frames": [str(path) for path in frames],
        "onset": onset,
        "apex": apex,
        "offset": offset,
        "fps": options.fps or sample.fps or float("nan"),
        "emotion": emotion,
        "action_units": units,
        "label": _parse_label(sample, key, report),
        "apex_source": apex_source,
        "au_raw": None if sample.action_units is None else str(sample.action_units),
    }


def _parse_label(sample: RawSample, key: str, report: LoadReport) -> int | None:
    if sample.label is None:
        return None
    parsed = parse_frame_number(sample.label)
    if parsed.value is None and parsed.problem:
        report.warn(f"{key} ({sample.source}): label {parsed.problem}")
    return parsed.value


def _listing(sample: RawSample, listings: _FrameListings, report: LoadReport, onset: int | None) -> list[Path] | None:
    key = _key(sample, onset)
    if sample.frames_dir is None:
        report.drop(key, sample.frames_problem or "frame folder not found")
        return None
    listing = listings.get(sample.frames_dir)
    if isinstance(listing, str):
        report.drop(key, listing)
        return None
    if not listing:
        report.drop(key, f"no frame files in {sample.frames_dir}")
        return None
    return listing


def _positions_to_numbers(
    sample: RawSample, listing: list[Path], cells: tuple[int | None, int | None, int | None], report: LoadReport
) -> tuple[int | None, int | None, int | None] | None:
    numbers = []
    for name, position in zip(("onset", "apex", "offset"), cells):
        if position is None:
            numbers.append(None)
            continue
        index = position - sample.position_base
        if not 0 <= index < len(listing):
            report.drop(_key(sample, cells[0]),
                        f"{name} position {position} outside the {len(listing)} frames of {sample.frames_dir}")
            return None
        numbers.append(frame_number(listing[index]))
    return numbers[0], numbers[1], numbers[2]


def _select_frames(listing: list[Path], onset: int, offset: int, key: str, report: LoadReport) -> list[Path]:
    frames = [path for path in listing if onset <= frame_number(path) <= offset]
    if not frames:
        return frames
    first, last = frame_number(frames[0]), frame_number(frames[-1])
    if first != onset or last != offset:
        report.warn(f"{key}: frames on disk run {first}..{last}, annotation says {onset}..{offset}")
    expected = offset - onset + 1
    if len(frames) != expected and first == onset and last == offset:
        missing = expected - len(frames)
        report.warn(f"{key}: {missing} frame{'s' if missing > 1 else ''} missing between onset and offset")
    return frames


def _warn_if_implausible(key: str, onset: int | None, offset: int | None, fps: float | None,
                         report: LoadReport) -> None:
    if onset is None or offset is None or not fps:
        return
    seconds = (offset - onset + 1) / fps
    if seconds > MAX_PLAUSIBLE_SECONDS:
        report.warn(f"{key}: onset-offset spans {seconds:.1f} s, implausibly long for a micro-expression")


def annotation_file(root: Path, options: LoadOptions, patterns: list[str], what: str, report: LoadReport) -> Path:
    """``options.annotation`` if given (must exist), else the file found under ``root`` by pattern."""
    if options.annotation is not None:
        if not options.annotation.is_file():
            raise FileNotFoundError(f"{what} annotation file not found: {options.annotation}")
        report.note(f"annotation: {options.annotation}")
        return options.annotation
    chosen, others = find_annotation(root, patterns, what)
    report.note(f"annotation: {chosen}")
    if others:
        report.warn(f"several {what} annotation files found; using {chosen.name}, ignoring {[p.name for p in others]}")
    return chosen


def sheet_rows(
    sheet: Sheet, dataset: str, report: LoadReport, read_ids: Callable[[dict[str, object]], _Ids]
) -> Iterator[tuple[dict[str, object], str, _Ids]]:
    """Each data row of ``sheet`` as ``(row, source, read_ids(row))``, ``source`` being the row reference.

    A row whose ids ``read_ids`` rejects with ValueError is dropped into ``report`` as ``"<dataset> <source>"``.
    """
    for index, row in enumerate(sheet.frame.to_dict(orient="records")):
        source = sheet.row_ref(index)
        try:
            ids = read_ids(row)
        except ValueError as error:
            report.drop(f"{dataset} {source}", str(error))
            continue
        yield row, source, ids


def sample_from_row(
    row: Mapping[str, object],
    names: Mapping[str, str | None],
    *,
    dataset: str,
    subject: str,
    clip: str,
    source: str,
    **fields: object,
) -> RawSample:
    """A RawSample whose ``ROW_CELLS`` are ``row``'s cells in the columns ``names`` gives for them
    (None where the column is absent); ``fields`` set the other RawSample fields and may replace a cell."""
    cells = {key: row[names[key]] if names.get(key) else None for key in ROW_CELLS}
    return RawSample(dataset=dataset, subject=subject, clip=clip, source=source, **{**cells, **fields})


def clip_folder_samples(
    sheet: Sheet,
    names: Mapping[str, str | None],
    dataset: str,
    report: LoadReport,
    read_subject: Callable[[object], str],
    frames_root: Path | None,
    fps: float | None,
) -> list[RawSample]:
    """The samples of a sheet whose clips are stored as ``<frames_root>/<subject>/<clip>/``.

    ``read_subject`` turns the subject cell into the canonical id (ValueError drops the row).
    """
    samples = []
    for row, source, subject in sheet_rows(sheet, dataset, report, lambda row: read_subject(row[names["subject"]])):
        clip = cell_text(row[names["clip"]]) or ""
        samples.append(
            sample_from_row(
                row,
                names,
                dataset=dataset,
                subject=subject,
                clip=clip,
                source=source,
                fps=fps,
                frames_dir=clip_dir(frames_root, subject, clip),
                frames_problem=f"clip folder {subject}/{clip} not found under {frames_root}",
            )
        )
    return samples
