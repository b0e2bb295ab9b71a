"""Locating dataset folders on disk: case-insensitive names, nested extraction folders."""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from micronbert.data.table import LoadReport


def find_child_dir(parent: Path, name: str) -> Path | None:
    """The sub-folder of ``parent`` named ``name``, matched case-insensitively (exact match first)."""
    exact = parent / name
    if exact.is_dir():
        return exact
    if not parent.is_dir():
        return None
    lowered = name.lower()
    for entry in sorted(parent.iterdir()):
        if entry.is_dir() and entry.name.lower() == lowered:
            return entry
    return None


def find_nested_dir(root: Path, names: Sequence[str], max_depth: int = 3) -> Path | None:
    """The first folder under ``root`` (breadth first, up to ``max_depth`` levels) whose name is one
    of ``names`` (case-insensitive, earlier names preferred at the same depth).

    Archives often unpack with the folder repeated (``Cropped/Cropped``): the innermost
    repetition is returned.
    """
    wanted = [name.lower() for name in names]
    level = [root]
    for _ in range(max_depth):
        matches: list[Path] = []
        next_level: list[Path] = []
        for folder in level:
            for entry in _subdirs(folder):
                if entry.name.lower() in wanted:
                    matches.append(entry)
                next_level.append(entry)
        if matches:
            best = min(matches, key=lambda path: (wanted.index(path.name.lower()), str(path)))
            repeated = find_child_dir(best, best.name)
            return repeated if repeated is not None else best
        level = next_level
    return None


def has_subdirs_matching(folder: Path, pattern: str) -> bool:
    """Whether ``folder`` holds a sub-folder whose whole name matches ``pattern`` (case-insensitive)."""
    regex = re.compile(pattern, re.IGNORECASE)
    return any(regex.fullmatch(entry.name) for entry in _subdirs(folder))


def find_frames_root(
    base: Path,
    layouts: Mapping[str, Sequence[str]],
    layout: str,
    what: str,
    subject_dir_pattern: str,
    report: LoadReport,
) -> Path:
    """The frames folder of ``layout`` (a key of ``layouts``, whose values are folder names) under ``base``.

    ``auto`` tries every layout in order, then ``base`` itself when it holds a sub-folder whose
    whole name matches ``subject_dir_pattern``. The choice is noted in ``report``. Raises ValueError
    for an unknown layout and FileNotFoundError, naming ``what`` and the folders sought, when none is found.
    """
    if layout != "auto" and layout not in layouts:
        raise ValueError(f"unknown {what} layout {layout!r}; choose 'auto' or one of {sorted(layouts)}")
    chosen = list(layouts) if layout == "auto" else [layout]
    for name in chosen:
        found = find_nested_dir(base, layouts[name])
        if found is not None:
            report.note(f"{what} frames: {name} layout at {found}")
            return found
    if layout == "auto" and has_subdirs_matching(base, subject_dir_pattern):
        report.note(f"{what} frames: subject folders directly under {base}")
        return base
    raise FileNotFoundError(
        f"no {what} frame folder ({', '.join(n for k in chosen for n in layouts[k])}) under {base}; "
        "pass check_frames=False to read the annotation alone"
    )


def clip_dir(frames_root: Path | None, subject: str, clip: str) -> Path | None:
    """The ``<frames_root>/<subject>/<clip>`` folder (names case-insensitive); None when absent,
    or when ``frames_root`` or ``clip`` is not given."""
    if frames_root is None or not clip:
        return None
    subject_dir = find_child_dir(frames_root, subject)
    return find_child_dir(subject_dir, clip) if subject_dir is not None else None


def collect_dirs(root: Path, is_target: Callable[[str], bool], max_depth: int = 6) -> dict[str, list[Path]]:
    """Folders under ``root`` whose name satisfies ``is_target``, keyed by lower-case name.

    The walk does not descend into a matching folder (frame folders can hold thousands of files).
    """
    found: dict[str, list[Path]] = {}
    level = [root]
    for _ in range(max_depth):
        next_level: list[Path] = []
        for folder in level:
            for entry in _subdirs(folder):
                if is_target(entry.name):
                    found.setdefault(entry.name.lower(), []).append(entry)
                else:
                    next_level.append(entry)
        level = next_level
    return found


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(entry for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    except OSError:
        return []


def require_dir(root: object, what: str) -> Path:
    """``root`` as an existing folder; FileNotFoundError naming ``what`` otherwise."""
    path = Path(str(root)).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {path}")
    return path
