"""Generic CSV manifest for users' own data.

One row per sample. Required columns: ``subject``, ``clip``, ``emotion``. Optional: ``dataset``
(default ``manifest``; used to namespace subjects), ``frames_dir`` (folder of the clip's frames,
relative to the manifest's folder or absolute), ``onset``, ``apex``, ``offset`` (frame numbers =
trailing integers of the file names; onset/offset default to the first/last frame of
``frames_dir``), ``fps``, ``action_units`` (``4+7``), ``label`` (class index, kept when no scheme
is given). ``root`` is the CSV file or a folder holding ``manifest.csv``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from micronbert.data.datasets.build import LoadOptions, RawSample, build_table
from micronbert.data.datasets.sheets import cell_text, column, read_table
from micronbert.data.frames import frame_number, list_frames
from micronbert.data.table import LoadReport

DATASET = "manifest"
DEFAULT_FILE = "manifest.csv"


def read(root: str | Path, options: LoadOptions, report: LoadReport) -> pd.DataFrame:
    """Samples listed in a CSV manifest (see module docstring)."""
    path = _manifest_path(Path(str(root)).expanduser(), options)
    sheet = read_table(path, [("subject",), ("clip",), ("emotion",)], scan_rows=1)
    names = {
        name: column(sheet, (name,), required=name in {"subject", "clip", "emotion"})
        for name in ("dataset", "subject", "clip", "frames_dir", "onset", "apex", "offset", "fps", "emotion",
                     "action_units", "label")
    }
    report.note(f"manifest: {path}")
    samples = []
    for index, row in enumerate(sheet.frame.to_dict(orient="records")):
        source = sheet.row_ref(index)
        value = {name: (cell_text(row[col]) if col else None) for name, col in names.items()}
        if value["subject"] is None or value["clip"] is None:
            report.drop(f"{DATASET} {source}", "subject or clip is empty")
            continue
        folder = _frames_dir(path.parent, value["frames_dir"])
        onset, offset = value["onset"], value["offset"]
        if folder is not None and (onset is None or offset is None):
            onset, offset = _default_interval(folder, onset, offset)
        samples.append(
            RawSample(
                dataset=value["dataset"] or DATASET,
                subject=value["subject"],
                clip=value["clip"],
                onset=onset,
                apex=value["apex"],
                offset=offset,
                emotion=value["emotion"],
                action_units=value["action_units"],
                fps=_fps(value["fps"], source),
                frames_dir=folder,
                frames_problem=f"{source}: no frames_dir given",
                source=source,
                label=value["label"],
            )
        )
    return build_table(samples, options, report)


def _default_interval(folder: Path, onset: str | None, offset: str | None) -> tuple[str | None, str | None]:
    """Missing onset/offset default to the first/last frame of the folder (when it can be listed)."""
    try:
        frames = list_frames(folder)
    except (OSError, ValueError):
        return onset, offset
    if not frames:
        return onset, offset
    return onset or str(frame_number(frames[0])), offset or str(frame_number(frames[-1]))


def _manifest_path(root: Path, options: LoadOptions) -> Path:
    path = options.annotation or (root / DEFAULT_FILE if root.is_dir() else root)
    if not path.is_file():
        raise FileNotFoundError(f"manifest file not found: {path}")
    return path


def _frames_dir(base: Path, text: str | None) -> Path | None:
    if text is None:
        return None
    folder = Path(text).expanduser()
    return folder if folder.is_absolute() else base / folder


def _fps(text: str | None, source: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{source}: fps {text!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"{source}: fps must be positive, got {text!r}")
    return value
