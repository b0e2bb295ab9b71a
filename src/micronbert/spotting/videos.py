"""The long videos of a spotting dataset as spotters read them: the frame folder of every video, and a
:class:`~micronbert.spotting.SpotVideo` per folder whose frames are the aligned face crops that
:func:`micronbert.data.faces.track_face` makes while following the face through the folder (docs/SPOTTING.md).

Frame-folder layouts (the synthetic long videos of ``micronbert synth --long`` use the same ones):

- ``casme_sq``: ``rawpic/s15/15_0101disgustingteeth/img001.jpg`` is video ``s15_0101``: the subject folder and the
  4-digit stimulus code after the underscore (so ``s19/23_0502funnyerrors`` is ``s19_0502``);
- ``samm_lv``: ``SAMM_longvideos/006_1/006_1_0001.jpg`` is video ``006_1``;
- ``casme3``: ``.../spNO.1/a/color/{n}.jpg`` is video ``spNO.1_a``.

Frame numbers are the numbers of the frame files, as in the annotation sheets. Where a folder's numbers have gaps
(CAS(ME)^3 Part A has some), each missing number is a frame without a face (``None``) in the stream, so that stream
position ``i`` is always frame ``first_frame + i`` and spotted intervals stay in the sheets' numbers; the gap frames
are never read or tracked, and the count of missing numbers is reported (``FolderFrames.facts``).

Each pass over a video tracks the face again, unless its crops fit in a :class:`CropMemory` budget: then the first
complete pass keeps them and later passes (a spotter reads a video once per new frame distance) read them from memory.
With ``keep_every`` > 1 (a spotter's temporal stride, e.g. 7 for SAMM's 200 fps) only every ``keep_every``-th frame is
read and tracked (the tracker then runs at fps / keep_every) and the others are ``None``: the spotters' signals never
look at them (docs/SPOTTING.md).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from micronbert.data.datasets.ids import casme3_clip, casme3_subject, samm_subject
from micronbert.data.faces import FaceBackend, FaceTrackConfig, NoFaceError, track_face
from micronbert.data.frames import frame_number, is_frame_file, read_frame, sort_frames
from micronbert.io import check_positive_int
from micronbert.spotting.intervals import get_spotting_dataset
from micronbert.spotting.spotters import SpotVideo

FOLDER_LAYOUTS: Mapping[str, str] = {
    "casme_sq": "rawpic/s15/15_0101disgustingteeth/img001.jpg -> s15_0101",
    "samm_lv": "SAMM_longvideos/006_1/006_1_0001.jpg -> 006_1",
    "casme3": "part_A/spNO.1/a/color/1.jpg -> spNO.1_a",
}
MAX_DEPTH = 6
_CASME_SQ_SUBJECT = re.compile(r"s(\d+)", re.IGNORECASE)
_CASME_SQ_VIDEO = re.compile(r"\d+_(\d{4})")
_SAMM_VIDEO = re.compile(r"(\d{3})_(\d+)")
_CASME3_LETTER = re.compile(r"[a-z]", re.IGNORECASE)

Frame = np.ndarray | None


# --- folders -----------------------------------------------------------------------------------------------------


def _casme_sq_id(folder: Path) -> tuple[str, str] | None:
    subject, video = _CASME_SQ_SUBJECT.fullmatch(folder.parent.name), _CASME_SQ_VIDEO.match(folder.name)
    if subject is None or video is None:
        return None
    name = f"s{int(subject.group(1))}"
    return f"{name}_{video.group(1)}", name


def _samm_lv_id(folder: Path) -> tuple[str, str] | None:
    match = _SAMM_VIDEO.fullmatch(folder.name)
    return (folder.name, samm_subject(match.group(1))) if match else None


def _casme3_id(folder: Path) -> tuple[str, str] | None:
    if folder.name.lower() != "color" or not _CASME3_LETTER.fullmatch(folder.parent.name):
        return None
    try:
        subject = casme3_subject(folder.parent.parent.name)
    except ValueError:
        return None
    return f"{subject}_{casme3_clip(folder.parent.name)}", subject


_IDS: Mapping[str, Callable[[Path], tuple[str, str] | None]] = {
    "casme_sq": _casme_sq_id, "samm_lv": _samm_lv_id, "casme3": _casme3_id,
}


def _checked_layout(name: str) -> Callable[[Path], tuple[str, str] | None]:
    get_spotting_dataset(name)
    if name not in _IDS:
        raise ValueError(f"{name}: no frame-folder layout is known (known: {', '.join(FOLDER_LAYOUTS)}); CAS(ME)^3 "
                         "Part C numbers its intervals by position in the folder, not by frame file")
    return _IDS[name]


def _has_frames(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return any(entry.is_file() and is_frame_file(Path(entry.path)) for entry in entries)


def _video_folders_with_subjects(name: str, root: str | Path) -> dict[str, tuple[Path, str]]:
    identify = _checked_layout(name)
    start = Path(root).expanduser()
    if not start.is_dir():
        raise FileNotFoundError(f"{name}: frame root {start} is not a folder")
    found: dict[str, tuple[Path, str]] = {}
    for folder, children, _ in os.walk(start, followlinks=True):  # depth-limited, so a link cycle ends
        here = Path(folder)
        children[:] = sorted(c for c in children if not c.startswith(".")) if _depth(here, start) < MAX_DEPTH else []
        ids = identify(here)
        if ids is None or not _has_frames(here):
            continue
        children[:] = []
        video, subject = ids
        if video in found:
            raise ValueError(f"{name}: two frame folders are video {video}: {found[video][0]} and {here}; give the "
                             "folder that holds one copy")
        found[video] = (here, subject)
    if not found:
        raise FileNotFoundError(f"{name}: no frame folders laid out as {FOLDER_LAYOUTS[name]} within {MAX_DEPTH} "
                                f"levels below {start}")
    return dict(sorted(found.items()))


def _depth(folder: Path, start: Path) -> int:
    return len(folder.relative_to(start).parts)


def video_folders(name: str, root: str | Path) -> dict[str, Path]:
    """The frame folder of each video of dataset ``name`` (``casme_sq``, ``samm_lv``, ``casme3``) found up to
    ``MAX_DEPTH`` levels below ``root``, by video id in the annotation sheets' spelling (module docstring), sorted.

    Raises FileNotFoundError when none is found, ValueError for an unknown dataset or a video found twice."""
    return {video: folder for video, (folder, _) in _video_folders_with_subjects(name, root).items()}


# --- crops -------------------------------------------------------------------------------------------------------


class CropMemory:
    """Aligned face crops of whole videos kept in memory, up to ``budget_mb`` megabytes in all (0: none)."""

    def __init__(self, budget_mb: float = 1024.0) -> None:
        if not (isinstance(budget_mb, (int, float)) and not isinstance(budget_mb, bool) and budget_mb >= 0):
            raise ValueError(f"budget_mb must be a non-negative number, got {budget_mb!r}")
        self.budget = int(budget_mb * 2**20)
        self.used = 0
        self._videos: dict[str, list[Frame]] = {}

    def get(self, key: str) -> list[Frame] | None:
        """The crops stored under ``key`` (None when absent)."""
        return self._videos.get(key)

    def fits(self, n_bytes: int) -> bool:
        """Whether ``n_bytes`` more fit in the budget."""
        return self.used + n_bytes <= self.budget

    def store(self, key: str, frames: list[Frame], n_bytes: int) -> None:
        """Keep ``frames`` under ``key`` when they fit."""
        if key not in self._videos and self.fits(n_bytes):
            self._videos[key] = frames
            self.used += n_bytes


class FolderFrames:
    """The stream of one frame folder's aligned face crops, one per frame number from the first to the last file
    (``None`` for a missing number, a frame without a face or a frame that ``keep_every`` skips). Callable: each
    call starts a new pass. ``facts`` says what the last complete tracking pass found; ``on_pass(facts)`` is called
    after each complete pass."""

    def __init__(self, video: str, folder: Path, fps: float, track: FaceTrackConfig, keep_every: int = 1,
                 memory: CropMemory | None = None, backend: FaceBackend | None = None,
                 progress: bool = False, on_pass: Callable[[dict[str, Any]], None] | None = None) -> None:
        check_positive_int("keep_every", keep_every)
        self.video, self.folder, self.fps, self.keep_every = video, folder, fps, keep_every
        self.track = dataclasses.replace(track, fps=fps / keep_every)
        self.memory, self.backend, self.progress, self.on_pass = memory, backend, progress, on_pass
        paths = sort_frames(path for path in folder.iterdir() if path.is_file() and is_frame_file(path))
        if not paths:
            raise ValueError(f"{folder}: folder holds no frames")
        self.paths = {frame_number(path): path for path in paths}
        self.first, self.last = min(self.paths), max(self.paths)
        self._facts: dict[str, Any] = {"video": video, "folder": str(folder), "frames": self.n_frames,
                                       "missing_numbers": self.n_frames - len(self.paths), "tracked": None,
                                       "faceless": None}

    @property
    def n_frames(self) -> int:
        """Frames in the stream: last − first + 1."""
        return self.last - self.first + 1

    def numbers_read(self) -> list[int]:
        """The frame numbers whose files a tracking pass reads: the kept positions that have a file."""
        return [n for n in range(self.first, self.last + 1, self.keep_every) if n in self.paths]

    def facts(self) -> dict[str, Any]:
        """Video id, folder, frames, missing numbers, and frames tracked and without a face in the last complete
        pass (None before one)."""
        return dict(self._facts)

    def key(self) -> str:
        """Identifies the crops of this folder under this tracking and stride (for ``CropMemory``)."""
        return json.dumps({"folder": str(self.folder), "track": self.track.to_dict(), "keep_every": self.keep_every},
                          sort_keys=True)

    def __call__(self) -> Iterator[Frame]:
        stored = self.memory.get(self.key()) if self.memory is not None else None
        return iter(stored) if stored is not None else self._tracked()

    def _tracked(self) -> Iterator[Frame]:
        numbers = self.numbers_read()
        tracked = track_face((read_frame(self.paths[n]) for n in numbers), self.track, backend=self.backend)
        size = self.track.size
        n_bytes = len(numbers) * size * size * 3
        keep: list[Frame] | None = [] if self.memory is not None and self.memory.fits(n_bytes) else None
        wanted = set(numbers)
        faceless = 0
        with tqdm(total=self.n_frames, desc=self.video, unit="frame", leave=False, disable=not self.progress) as bar:
            for number in range(self.first, self.last + 1):
                crop = next(tracked).crop if number in wanted else None
                faceless += number in wanted and crop is None
                if keep is not None:
                    keep.append(crop)
                bar.update()
                yield crop
        try:
            next(tracked, None)  # ends the track: its summary is complete, or it had no face at all
        except NoFaceError:
            pass  # every crop was None already: the video is spotted as faceless and reported in facts
        self._facts.update(tracked=len(numbers), faceless=faceless)
        if self.on_pass is not None:
            self.on_pass(self.facts())
        if keep is not None and self.memory is not None:
            self.memory.store(self.key(), keep, n_bytes)


def dataset_videos(name: str, root: str | Path, track: FaceTrackConfig | None = None,
                   truth: pd.DataFrame | None = None, *, keep_every: int = 1, memory: CropMemory | None = None,
                   backend: FaceBackend | None = None, progress: bool = False,
                   on_pass: Callable[[dict[str, Any]], None] | None = None) -> list[SpotVideo]:
    """One SpotVideo per frame folder of dataset ``name`` below ``root`` (``video_folders``), sorted by id: the
    dataset's frame rate (``available_spotting_datasets``), the subject of the video's rows in ``truth`` (else the
    one its folder names), ``first_frame`` the folder's first frame number, and ``frames`` a :class:`FolderFrames`
    streaming the face crops of ``track`` (default ``FaceTrackConfig()``; its ``fps`` is set from the dataset).

    ``keep_every``, ``memory``: see the module docstring; ``backend`` replaces ``track.backend``'s face backend;
    ``progress`` shows a bar per tracking pass; ``on_pass(facts)`` is called after each complete pass of a video."""
    fps = get_spotting_dataset(name).fps
    track = track if track is not None else FaceTrackConfig()
    owners = _truth_subjects(truth)
    videos = []
    for video, (folder, subject) in _video_folders_with_subjects(name, root).items():
        frames = FolderFrames(video, folder, fps, track, keep_every, memory, backend, progress, on_pass)
        videos.append(SpotVideo(video, fps, frames, subject=owners.get(video, subject), first_frame=frames.first))
    return videos


def _truth_subjects(truth: pd.DataFrame | None) -> dict[str, str]:
    if truth is None or not {"video", "subject"} <= set(truth.columns):
        return {}
    known = truth.dropna(subset=["subject"])
    return {str(video): str(subject) for video, subject in zip(known["video"], known["subject"])}
