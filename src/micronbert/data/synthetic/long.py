"""Synthetic long videos for spotting, written in the CAS(ME)^2 and SAMM Long Videos layouts (docs/SPOTTING.md),
so that ``micronbert.spotting.read_intervals`` reads their sheets back.

Each video shows one synthetic face (one identity per subject) for ``duration_s`` seconds, under the usual nuisances,
with four kinds of events at known intervals that never overlap: micro-expressions (AU displacement fields, onset to
offset at most 0.5 s), macro-expressions (the same fields at a larger amplitude, 0.5-4 s), blinks (the eyelids close
and reopen) and deliberate head movements (a larger, slower pose change than the sway). As in the real datasets, the
annotation sheet lists the micro- and macro-expressions only; blinks and head movements are distractors, listed with
every other event in the ground-truth JSON.

Layout ``casme_sq`` (30 fps)::

    out_dir/
      CAS(ME)^2code_final.xlsx        sheets CASFEcode_final (no header, 9 columns), naming rule1, naming rule2
      rawpic/s15/15_0101disgustingteeth/img001.jpg ...     frame numbers from 1, at least 3 digits
      rawvideo/s15/15_0101disgustingteeth.mp4               decoded frame k (0-based) is frame k + 1
      synthetic_long_ground_truth.json
      synth_long_config.json

Layout ``samm_lv`` (200 fps)::

    out_dir/
      SAMM_LongVideos_V1_Release.xlsx sheet FACS_Movement_Only: notes on rows 1-9, header on row 10
      SAMM_Micro_FACS_Codes_v2.xlsx   the micro-expressions with their Estimated Emotion: header on row 14
      SAMM_longvideos/006_1/006_1_0001.jpg ...             frame numbers from 1, at least 4 digits
      videos/006_1.mp4
      synthetic_long_ground_truth.json
      synth_long_config.json

Frame numbers in the sheet and the JSON are the numbers of the frame files; intervals include both ends, and the
onset and offset frames are neutral (every intensity profile is 0 there). Frames are rendered one at a time and
streamed to the files, so memory does not grow with the length of a video.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import cv2
import numpy as np
import pandas as pd
from openpyxl import Workbook
from tqdm import tqdm

from micronbert.config import Config
from micronbert.io import atomic_path, read_json_mapping, write_json_atomically

from .actions import (
    APEX_POSITION,
    CLASSES,
    DEFAULT_AMPLITUDE,
    Blink,
    MicroExpression,
    casme2_emotion,
    format_action_units,
    sample_expression,
)
from .faces import MIN_SIZE, SyntheticFace
from .nuisance import MAX_MOVEMENT_ROTATION_DEG, MAX_MOVEMENT_SHIFT, HeadMovement, NuisanceConfig
from .render import Scene
from .writers import SEED_LIMIT, _tee_to_video

LAYOUTS = ("casme_sq", "samm_lv")
LAYOUT_FPS: Mapping[str, int] = MappingProxyType({"casme_sq": 30, "samm_lv": 200})
EVENT_TYPES = ("micro", "macro", "blink", "head")
SHEET_TYPES = ("micro", "macro")
GROUND_TRUTH_FILE = "synthetic_long_ground_truth.json"
CONFIG_FILE = "synth_long_config.json"
GROUND_TRUTH_COLUMNS = ("video", "subject", "type", "onset", "apex", "offset", "objective_class", "emotion", "au",
                        "in_sheet", "fps", "n_frames")

CASME_SQ_SHEET = "CAS(ME)^2code_final.xlsx"
CASME_SQ_SHEETS = ("CASFEcode_final", "naming rule1", "naming rule2")
CASME_SQ_TYPES: Mapping[str, str] = MappingProxyType({"micro": "micro-expression", "macro": "macro-expression"})
CASME_SQ_FOLDER_NUMBERS = (15, 16, 19, 20, 21, 22, 23, 24, 25, 26, 27, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 40)
# (4-digit code, stimulus name of the sheet, words of the video folder name)
CASME_SQ_VIDEOS: tuple[tuple[str, str, str], ...] = (
    ("0101", "disgust1", "disgustingteeth"), ("0102", "disgust2", "eatingworms"), ("0401", "anger1", "girlcrashing"),
    ("0402", "anger2", "beatingpregnantwoman"), ("0502", "happy1", "funnyerrors"), ("0503", "happy2", "funnyfarting"),
    ("0505", "happy3", "funnyinnovations"), ("0507", "happy4", "climbingthewall"), ("0508", "happy5", "funnydunkey"),
)

SAMM_LV_SHEET = "SAMM_LongVideos_V1_Release.xlsx"
SAMM_LV_SHEET_NAME = "FACS_Movement_Only"
SAMM_LV_HEADER = ("Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
                  "Action Units", "Notes")
SAMM_LV_NOTES: tuple[tuple[str | None, ...], ...] = (
    ("SAMM Long Videos Dataset - FACS Codes",), (), ('"/" = or',),
    ("AU numbers follow FACS; L/R = left/right, A-E = intensity",), (), (),
    (None, None, None, None, None, "NOTE: Subjects with Apex Frame not annotated were labelled as -1."), (), (),
)
SAMM_LV_TYPES: Mapping[str, str] = MappingProxyType({"micro": "Micro - 1/2", "macro": "Macro"})
SAMM_ME_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"
SAMM_ME_HEADER = ("Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
                  "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes")
SAMM_ME_NOTES_ROWS = 13
SAMM_LV_SUBJECTS = tuple(f"{number:03d}" for number in range(6, 38) if number not in (27, 29))
SAMM_LV_INDUCEMENTS = 7

MAX_SUBJECTS: Mapping[str, int] = MappingProxyType({"casme_sq": len(CASME_SQ_FOLDER_NUMBERS),
                                                    "samm_lv": len(SAMM_LV_SUBJECTS)})
MAX_VIDEOS: Mapping[str, int] = MappingProxyType({"casme_sq": len(CASME_SQ_VIDEOS), "samm_lv": SAMM_LV_INDUCEMENTS})
MAX_DURATION_S = 3600.0
MAX_FPS = 1000
MICRO_DURATION_BOUNDS = (0.04, 0.5)
MACRO_DURATION_BOUNDS = (0.5, 4.0)
BLINK_DURATION_BOUNDS = (0.05, 1.0)
HEAD_MOVEMENT_DURATION_BOUNDS = (0.2, 10.0)
BLINK_APEX_POSITION = (0.3, 0.45)  # eyelids close faster than they open


@dataclass(frozen=True)
class LongVideoConfig(Config):
    """What `write_long_videos` generates.

    `layout` ``casme_sq`` (CAS(ME)^2-like) or ``samm_lv`` (SAMM-LV-like); `subjects` x `videos_per_subject` videos of
    `duration_s` seconds at `fps` (None: 30 for ``casme_sq``, 200 for ``samm_lv``), `size` x `size` pixels, frames as
    JPEG at `jpeg_quality`. Events per video: on average `micro_per_minute`, `macro_per_minute`, `blinks_per_minute`
    and `head_movements_per_minute` (stochastic rounding of rate x length), with onset-to-offset durations drawn from
    the `*_duration_s` ranges and at least `min_gap_s` of neutral face before, between and after them. Amplitudes are
    apex displacements as fractions of the face width; `blink_closure` is the closed fraction of the eye at a blink's
    apex; head movements shift by `head_movement_shift` (fraction of the image) in a random direction and turn by
    `head_movement_rotation_deg`. `nuisance_strength` scales the nuisances of `NuisanceConfig()` (0: clean frames).
    """

    seed: int = 0
    layout: str = "casme_sq"
    subjects: int = 2
    videos_per_subject: int = 1
    duration_s: float = 30.0
    fps: int | None = None
    size: int = 128
    jpeg_quality: int = 95
    classes: tuple[str, ...] = CLASSES
    micro_per_minute: float = 4.0
    macro_per_minute: float = 6.0
    blinks_per_minute: float = 10.0
    head_movements_per_minute: float = 2.0
    micro_duration_s: tuple[float, float] = (0.2, 0.5)
    macro_duration_s: tuple[float, float] = (0.75, 3.0)
    blink_duration_s: tuple[float, float] = (0.1, 0.4)
    head_movement_duration_s: tuple[float, float] = (0.5, 2.0)
    micro_amplitude: tuple[float, float] = DEFAULT_AMPLITUDE
    macro_amplitude: tuple[float, float] = (0.03, 0.08)
    blink_closure: tuple[float, float] = (0.8, 1.0)
    head_movement_shift: tuple[float, float] = (0.02, 0.06)
    head_movement_rotation_deg: tuple[float, float] = (2.0, 8.0)
    min_gap_s: float = 0.5
    nuisance_strength: float = 1.0
    write_frame_folders: bool = True
    write_mp4: bool = True

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, 0)
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        _check_int("subjects", self.subjects, 1, MAX_SUBJECTS[self.layout])
        _check_int("videos_per_subject", self.videos_per_subject, 1, MAX_VIDEOS[self.layout])
        _check_number("duration_s", self.duration_s, 1.0, MAX_DURATION_S)
        if self.fps is not None:
            _check_int("fps", self.fps, 1, MAX_FPS)
        _check_int("size", self.size, MIN_SIZE)
        if self.size % 2:
            raise ValueError(f"size must be even (H.264/MPEG-4 need even frame sizes), got {self.size}")
        _check_int("jpeg_quality", self.jpeg_quality, 1, 100)
        if not self.classes or any(c not in CLASSES for c in self.classes):
            raise ValueError(f"classes must be a non-empty subset of {CLASSES}, got {self.classes!r}")
        for kind in EVENT_TYPES:
            _check_number(_RATE_FIELDS[kind], getattr(self, _RATE_FIELDS[kind]), 0.0, 600.0)
        for kind, bounds in zip(EVENT_TYPES, (MICRO_DURATION_BOUNDS, MACRO_DURATION_BOUNDS, BLINK_DURATION_BOUNDS,
                                              HEAD_MOVEMENT_DURATION_BOUNDS)):
            name = _DURATION_FIELDS[kind]
            _check_pair(name, getattr(self, name), *bounds)
            _frame_lengths(name, getattr(self, name), self.frame_rate)
        _check_pair("micro_amplitude", self.micro_amplitude, 0.0, 0.2, open_low=True, open_high=True)
        _check_pair("macro_amplitude", self.macro_amplitude, 0.0, 0.2, open_low=True, open_high=True)
        _check_pair("blink_closure", self.blink_closure, 0.0, 1.0, open_low=True)
        _check_pair("head_movement_shift", self.head_movement_shift, 0.0, MAX_MOVEMENT_SHIFT)
        _check_pair("head_movement_rotation_deg", self.head_movement_rotation_deg, 0.0, MAX_MOVEMENT_ROTATION_DEG)
        _check_number("min_gap_s", self.min_gap_s, 0.0, 60.0)
        _check_number("nuisance_strength", self.nuisance_strength, 0.0, 10.0)
        for name in ("write_frame_folders", "write_mp4"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        self._check_events_fit()

    @property
    def frame_rate(self) -> int:
        """`fps`, or the layout's frame rate when `fps` is None."""
        return self.fps if self.fps is not None else LAYOUT_FPS[self.layout]

    @property
    def n_frames(self) -> int:
        """Frames per video."""
        return max(1, int(round(self.duration_s * self.frame_rate)))

    @property
    def gap_frames(self) -> int:
        """Neutral frames at least before, between and after the events."""
        return int(np.ceil(self.min_gap_s * self.frame_rate - 1e-9))

    def max_events(self, kind: str) -> int:
        """The most events of `kind` one video can get (the ceiling of rate x minutes)."""
        return int(np.ceil(getattr(self, _RATE_FIELDS[kind]) * self.duration_s / 60 - 1e-9))

    def _check_events_fit(self) -> None:
        """Refuse rates and durations whose longest draw would not fit in a video with its gaps."""
        longest = {kind: _frame_lengths(_DURATION_FIELDS[kind], getattr(self, _DURATION_FIELDS[kind]),
                                        self.frame_rate)[1] for kind in EVENT_TYPES}
        counts = {kind: self.max_events(kind) for kind in EVENT_TYPES}
        needed = sum(counts[k] * (longest[k] + 1) for k in EVENT_TYPES) + (sum(counts.values()) + 1) * self.gap_frames
        if sum(counts.values()) and needed > self.n_frames:
            rates = ", ".join(f"{_RATE_FIELDS[k]}={getattr(self, _RATE_FIELDS[k])}" for k in EVENT_TYPES)
            raise ValueError(f"events do not fit: up to {needed} frames of events and min_gap_s gaps ({rates}, "
                             f"longest durations, min_gap_s={self.min_gap_s}) in a video of {self.n_frames} frames "
                             f"(duration_s={self.duration_s}); lower the *_per_minute rates, the *_duration_s ranges "
                             "or min_gap_s, or raise duration_s")


_RATE_FIELDS: Mapping[str, str] = MappingProxyType({
    "micro": "micro_per_minute", "macro": "macro_per_minute", "blink": "blinks_per_minute",
    "head": "head_movements_per_minute",
})
_DURATION_FIELDS: Mapping[str, str] = MappingProxyType({
    "micro": "micro_duration_s", "macro": "macro_duration_s", "blink": "blink_duration_s",
    "head": "head_movement_duration_s",
})


@dataclass(frozen=True)
class LongVideoDataset:
    """Where `write_long_videos` put everything (paths under `root`; ids in the MEGC tools' spelling)."""

    root: Path
    layout: str
    fps: int
    n_frames: int
    annotation_sheet: Path
    ground_truth_json: Path
    video_ids: tuple[str, ...]
    frame_folders: tuple[Path, ...]
    video_files: tuple[Path, ...]


@dataclass(frozen=True)
class _VideoPlan:
    """Names of one video in its layout."""

    layout: str
    subject_index: int
    subject: str
    video: str
    stimulus: str
    folder: str
    frame_name: str
    mp4: str


def write_long_videos(out_dir: str | os.PathLike, config: LongVideoConfig | None = None,
                      progress: bool = False) -> LongVideoDataset:
    """Generate long videos with their annotation sheet and ground truth under `out_dir` (see the module docstring).

    `out_dir` must not exist or be empty. Everything is built in a sibling temporary folder renamed into place at the
    end, so an interrupted run leaves no half-written dataset. `progress` shows a bar over the rendered frames. The
    same configuration gives the same frames, videos, sheet cells and JSON.
    """
    config = config if config is not None else LongVideoConfig()
    if not isinstance(config, LongVideoConfig):
        raise ValueError(f"config must be a LongVideoConfig, got {type(config).__name__}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder; choose a new output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        write_json_atomically(partial / CONFIG_FILE, config.to_dict())
        plans = _video_plans(config)
        rendering = config.write_frame_folders or config.write_mp4
        with tqdm(total=len(plans) * config.n_frames if rendering else 0, desc="long videos", unit="frame",
                  disable=not progress) as bar:
            entries = [_write_video(partial, config, plan, bar) for plan in plans]
        sheet = _write_sheet(partial, config, entries)
        write_json_atomically(partial / GROUND_TRUTH_FILE, _ground_truth_header(config, sheet) | {"videos": entries})
        if out.exists():
            out.rmdir()
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return LongVideoDataset(
        root=out, layout=config.layout, fps=config.frame_rate, n_frames=config.n_frames,
        annotation_sheet=out / sheet, ground_truth_json=out / GROUND_TRUTH_FILE,
        video_ids=tuple(entry["video"] for entry in entries),
        frame_folders=tuple(out / e["frame_folder"] for e in entries if e["frame_folder"] is not None),
        video_files=tuple(out / e["mp4"] for e in entries if e["mp4"] is not None),
    )


def long_video_nuisance(config: LongVideoConfig) -> NuisanceConfig:
    """Nuisances used for rendering; JPEG is left to the frame files (no double compression)."""
    return NuisanceConfig(jpeg_quality=None).scaled(config.nuisance_strength)


def read_long_ground_truth(root: str | os.PathLike) -> pd.DataFrame:
    """Every inserted event of a dataset written by `write_long_videos`, one row each (``GROUND_TRUTH_COLUMNS``):
    video, subject, type (``micro``, ``macro``, ``blink``, ``head``), onset, apex, offset, objective_class, emotion
    and au (expressions only), in_sheet (whether the annotation sheet lists it), fps and n_frames.

    root: the dataset folder or its ground-truth JSON. Raises FileNotFoundError without it and ValueError naming the
    file (and the missing field) when it is not such a ground truth.
    """
    path = Path(root)
    path = path / GROUND_TRUTH_FILE if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no synthetic long-video ground truth here")
    truth = read_json_mapping(path, "synthetic long-video ground truth")
    rows = []
    try:
        for entry in truth["videos"]:
            for event in entry["events"]:
                rows.append({
                    "video": entry["video"], "subject": entry["subject"], "type": event["type"],
                    "onset": event["onset"], "apex": event["apex"], "offset": event["offset"],
                    "objective_class": event.get("objective_class"), "emotion": event.get("emotion"),
                    "au": event.get("action_units"), "in_sheet": event["in_sheet"], "fps": truth["fps"],
                    "n_frames": entry["n_frames"],
                })
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: a ground-truth entry lacks the field {error}; was it written by this "
                         "version?") from None
    table = pd.DataFrame(rows, columns=list(GROUND_TRUTH_COLUMNS))
    return table.astype({"onset": "int64", "apex": "int64", "offset": "int64", "in_sheet": "bool"})


def scene_from_long_ground_truth(ground_truth: Mapping, entry: Mapping) -> Scene:
    """Rebuild the `Scene` of one long video from its loaded ground-truth JSON and one of its ``videos`` entries."""
    try:
        return Scene(
            face=SyntheticFace.sample(int(entry["face_seed"])),
            expressions=[MicroExpression.from_dict(e) for e in entry["expressions"]],
            fps=float(ground_truth["fps"]),
            size=int(ground_truth["size"]),
            nuisance=NuisanceConfig.from_dict(ground_truth["nuisance"]),
            seed=int(entry["scene_seed"]),
            blinks=[Blink.from_dict(b) for b in entry["blinks"]],
            head_movements=[HeadMovement.from_dict(m) for m in entry["head_movements"]],
        )
    except KeyError as error:
        raise ValueError(f"ground-truth entry lacks the field {error}; was it written by this version?") from None


# --- videos ----------------------------------------------------------------------------------------------------


def _video_plans(config: LongVideoConfig) -> list[_VideoPlan]:
    plans = []
    for index in range(1, config.subjects + 1):
        if config.layout == "casme_sq":
            number = CASME_SQ_FOLDER_NUMBERS[index - 1]
            chosen = sorted((index - 1 + k) % len(CASME_SQ_VIDEOS) for k in range(config.videos_per_subject))
            for code, stimulus, words in (CASME_SQ_VIDEOS[k] for k in chosen):
                folder = f"s{number}/{number}_{code}{words}"
                plans.append(_VideoPlan(config.layout, index, f"s{number}", f"s{number}_{code}", stimulus,
                                        f"rawpic/{folder}", "img{number:03d}.jpg", f"rawvideo/{folder}.mp4"))
        else:
            subject = SAMM_LV_SUBJECTS[index - 1]
            for inducement in range(1, config.videos_per_subject + 1):
                video = f"{subject}_{inducement}"
                plans.append(_VideoPlan(config.layout, index, subject, video, str(inducement),
                                        f"SAMM_longvideos/{video}", video + "_{number:04d}.jpg",
                                        f"videos/{video}.mp4"))
    return plans


def _write_video(root: Path, config: LongVideoConfig, plan: _VideoPlan, bar: tqdm) -> dict:
    """Plan the events of one video, render it to its frame folder and/or .mp4; return its ground-truth entry."""
    fps = config.frame_rate
    face_seed = _derive_seed(config.seed, 21, plan.subject_index)
    rng = np.random.default_rng([config.seed, 22, plan.subject_index, _video_number(plan)])
    placed = _place_events(rng, config)
    expressions = [e for kind, e in placed if kind in SHEET_TYPES]
    blinks = [e for kind, e in placed if kind == "blink"]
    movements = [e for kind, e in placed if kind == "head"]
    scene_seed = int(rng.integers(SEED_LIMIT))
    folder = root / plan.folder if config.write_frame_folders else None
    video_path = root / plan.mp4 if config.write_mp4 else None
    if folder is not None or video_path is not None:
        scene = Scene(SyntheticFace.sample(face_seed), expressions, fps, config.size, long_video_nuisance(config),
                      scene_seed, blinks=blinks, head_movements=movements)
        numbers = range(1, config.n_frames + 1)
        frames = _counted((scene.frame(n) for n in numbers), bar)
        if video_path is not None:
            frames = _tee_to_video(frames, video_path, fps, config.size)
        if folder is not None:
            _write_frames(folder, [plan.frame_name.format(number=n) for n in numbers], frames, config.jpeg_quality)
        else:
            deque(frames, maxlen=0)
    return {
        "video": plan.video, "subject": plan.subject, "subject_index": plan.subject_index,
        "stimulus": plan.stimulus, "n_frames": config.n_frames, "first_frame": 1,
        "frame_folder": plan.folder if folder is not None else None,
        "frame_name": plan.frame_name if folder is not None else None,
        "mp4": plan.mp4 if video_path is not None else None,
        "face_seed": face_seed, "scene_seed": scene_seed,
        "events": _events(plan, fps, placed),
        "expressions": [e.to_dict() for e in expressions], "blinks": [b.to_dict() for b in blinks],
        "head_movements": [m.to_dict() for m in movements],
    }


def _video_number(plan: _VideoPlan) -> int:
    return int(plan.video.rsplit("_", 1)[1])


def _counted(frames: Iterator[np.ndarray], bar: tqdm) -> Iterator[np.ndarray]:
    for frame in frames:
        yield frame
        bar.update()


def _write_frames(folder: Path, names: Sequence[str], frames: Iterator[np.ndarray], quality: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    for name, frame in zip(names, frames, strict=True):
        path = folder / name
        if not cv2.imwrite(str(path), np.ascontiguousarray(frame[..., ::-1]), params):
            raise ValueError(f"could not write {path}")


# --- events ----------------------------------------------------------------------------------------------------

_Event = MicroExpression | Blink | HeadMovement


def _place_events(rng: np.random.Generator, config: LongVideoConfig) -> list[tuple[str, _Event]]:
    """The (type, event) pairs of one video in onset order: every event is sampled at frame 0, then they are laid out
    in a random order with random neutral stretches (at least `gap_frames` long) before, between and after them. The
    layout always fits (`LongVideoConfig` refuses rates and durations that might not)."""
    fps = config.frame_rate
    minutes = config.duration_s / 60
    shapes = [(kind, _sample_event(rng, kind, config)) for kind in EVENT_TYPES
              for _ in range(_stochastic_count(rng, getattr(config, _RATE_FIELDS[kind]) * minutes))]
    order = rng.permutation(len(shapes))
    timings = [shapes[i][1].frame_timing(fps) for i in order]
    slack = config.n_frames - sum(t.offset + 1 for t in timings) - (len(shapes) + 1) * config.gap_frames
    pauses = np.diff(np.concatenate([[0], np.sort(rng.integers(0, slack + 1, size=len(shapes)))]))
    placed: list[tuple[str, _Event]] = []
    position = 1
    for i, timing, pause in zip(order, timings, pauses):
        kind, event = shapes[i]
        onset = position + config.gap_frames + int(pause)
        placed.append((kind, dataclasses.replace(event, onset_s=onset / fps, apex_s=(onset + timing.apex) / fps,
                                                 offset_s=(onset + timing.offset) / fps)))
        position = onset + timing.offset + 1
    return placed


def _stochastic_count(rng: np.random.Generator, expected: float) -> int:
    """floor(expected), plus one with probability equal to its fractional part."""
    whole = int(np.floor(expected + 1e-9))
    return whole + int(rng.uniform() < expected - whole)


def _sample_event(rng: np.random.Generator, kind: str, config: LongVideoConfig) -> _Event:
    """One event of `kind` with its onset at frame 0."""
    fps = config.frame_rate
    durations = getattr(config, _DURATION_FIELDS[kind])
    if kind in SHEET_TYPES:
        objective_class = config.classes[int(rng.integers(len(config.classes)))]
        amplitude = config.micro_amplitude if kind == "micro" else config.macro_amplitude
        return sample_expression(rng, objective_class, fps, 0, amplitude, durations)
    shortest, longest = _frame_lengths(_DURATION_FIELDS[kind], durations, fps)
    length = int(rng.integers(shortest, longest + 1))
    position = rng.uniform(*(BLINK_APEX_POSITION if kind == "blink" else APEX_POSITION))
    apex = int(np.clip(round(position * length), 1, length - 1))
    if kind == "blink":
        return Blink(0.0, apex / fps, length / fps, closure=float(rng.uniform(*config.blink_closure)))
    shift = rng.uniform(*config.head_movement_shift)
    direction = rng.uniform(0, 2 * np.pi)
    angle = rng.uniform(*config.head_movement_rotation_deg) * rng.choice([-1.0, 1.0])
    return HeadMovement(0.0, apex / fps, length / fps, dx=float(shift * np.cos(direction)),
                        dy=float(shift * np.sin(direction)), angle_deg=float(angle))


def _event_record(kind: str, event: _Event, fps: int) -> dict:
    timing = event.frame_timing(fps)
    record = {"type": kind, "onset": timing.onset, "apex": timing.apex, "offset": timing.offset,
              "in_sheet": kind in SHEET_TYPES}
    if isinstance(event, MicroExpression):
        return record | {
            "objective_class": event.objective_class, "emotion": casme2_emotion(event.objective_class, event.aus),
            "aus": list(event.aus), "action_units": format_action_units(event.aus), "amplitude": event.amplitude,
        }
    if isinstance(event, Blink):
        return record | {"closure": event.closure}
    return record | {"dx": event.dx, "dy": event.dy, "angle_deg": event.angle_deg}


def _events(plan: _VideoPlan, fps: int, placed: Sequence[tuple[str, _Event]]) -> list[dict]:
    """Ground-truth events of one video in onset order; micro- and macro-expressions get their sheet name (CAS(ME)^2
    ``disgust1_2``, SAMM-LV ``006_1_2``, numbered in onset order)."""
    events = [_event_record(kind, event, fps) for kind, event in placed]
    prefix = plan.stimulus if plan.layout == "casme_sq" else plan.video
    for number, event in enumerate((e for e in events if e["in_sheet"]), start=1):
        event["sheet_name"] = f"{prefix}_{number}"
    return events


# --- sheets ----------------------------------------------------------------------------------------------------


def _write_sheet(root: Path, config: LongVideoConfig, entries: Sequence[Mapping]) -> str:
    """The annotation workbook of the layout; returns its name."""
    if config.layout == "casme_sq":
        _save_workbook(root / CASME_SQ_SHEET, _casme_sq_sheets(config, entries))
        return CASME_SQ_SHEET
    _save_workbook(root / SAMM_LV_SHEET, [(SAMM_LV_SHEET_NAME, _samm_lv_rows(entries))])
    _save_workbook(root / SAMM_ME_SHEET, [("FACS", _samm_micro_rows(entries))])
    return SAMM_LV_SHEET


def _sheet_events(entries: Sequence[Mapping]) -> Iterator[tuple[Mapping, Mapping]]:
    for entry in entries:
        for event in entry["events"]:
            if event["in_sheet"]:
                yield entry, event


def _casme_sq_sheets(config: LongVideoConfig, entries: Sequence[Mapping]) -> list[tuple[str, list[list]]]:
    """``CASFEcode_final`` (subject index, expression, onset, apex, offset, AU as a number when single, emotion,
    type, self-report; no header), ``naming rule1`` (folder number, folder, subject index: one line per code row,
    then one per subject without a row, so that every folder is named) and ``naming rule2`` (code as text, stimulus).
    The emotion column holds the objective class (negative / positive / surprise / others, the CAS(ME)^2 classes) and
    the self-report the CASME II-style emotion."""
    codes, rule1 = [], []
    for entry, event in _sheet_events(entries):
        aus = event["aus"]
        codes.append([entry["subject_index"], event["sheet_name"], event["onset"], event["apex"], event["offset"],
                      aus[0] if len(aus) == 1 else event["action_units"], event["objective_class"],
                      CASME_SQ_TYPES[event["type"]], event["emotion"]])
        rule1.append(_casme_sq_naming(entry["subject_index"]))
    named = {line[2] for line in rule1}
    rule1 += [_casme_sq_naming(index) for index in range(1, config.subjects + 1) if index not in named]
    rule2 = [[code, stimulus] for code, stimulus, _ in CASME_SQ_VIDEOS]
    return list(zip(CASME_SQ_SHEETS, (codes, rule1, rule2)))


def _casme_sq_naming(subject_index: int) -> list:
    number = CASME_SQ_FOLDER_NUMBERS[subject_index - 1]
    return [number, f"s{number}", subject_index]


def _samm_lv_rows(entries: Sequence[Mapping]) -> list[list]:
    """Notes on rows 1-9, the header on row 10, one row per expression from row 11; ``Duration`` is the release's
    formula."""
    rows: list[list] = [list(note) for note in SAMM_LV_NOTES] + [list(SAMM_LV_HEADER)]
    for entry, event in _sheet_events(entries):
        line = len(rows) + 1
        rows.append([entry["subject"], event["sheet_name"], int(entry["stimulus"]), event["onset"], event["apex"],
                     event["offset"], f"=SUM(F{line}-D{line})+1", SAMM_LV_TYPES[event["type"]],
                     event["action_units"], None])
    return rows


def _samm_micro_rows(entries: Sequence[Mapping]) -> list[list]:
    """The SAMM micro-expression sheet of the micro-expressions (notes on rows 1-13, the header on row 14): the
    emotions that the long-video sheet lacks, as the CASME II-style emotion capitalised as SAMM writes it."""
    rows: list[list] = [["SAMM Micro FACS Codes (synthetic)"]] + [[] for _ in range(SAMM_ME_NOTES_ROWS - 1)]
    rows.append(list(SAMM_ME_HEADER))
    for entry, event in _sheet_events(entries):
        if event["type"] == "micro":
            rows.append([int(entry["subject"]), event["sheet_name"], int(entry["stimulus"]), event["onset"],
                         event["apex"], event["offset"], event["offset"] - event["onset"] + 1, "Micro",
                         event["action_units"], event["emotion"].capitalize(), None, None])
    return rows


def _save_workbook(path: Path, sheets: Sequence[tuple[str, Sequence[Sequence[object]]]]) -> None:
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    with atomic_path(path) as temporary:
        book.save(temporary)


# --- helpers ---------------------------------------------------------------------------------------------------


def _ground_truth_header(config: LongVideoConfig, sheet: str) -> dict:
    return {"layout": config.layout, "fps": config.frame_rate, "size": config.size, "n_frames": config.n_frames,
            "jpeg_quality": config.jpeg_quality, "sheet": sheet, "event_types": list(EVENT_TYPES),
            "sheet_types": list(SHEET_TYPES), "nuisance": long_video_nuisance(config).to_dict(),
            "config": config.to_dict()}


def _derive_seed(*parts: int) -> int:
    return int(np.random.default_rng(list(parts)).integers(SEED_LIMIT))


def _frame_lengths(name: str, bounds: tuple[float, float], fps: int) -> tuple[int, int]:
    """Shortest and longest onset-to-offset length in frames for a duration range (as `sample_expression` rounds)."""
    shortest = max(2, int(np.ceil(bounds[0] * fps - 1e-9)))
    longest = int(np.floor(bounds[1] * fps + 1e-9))
    if longest < shortest:
        raise ValueError(f"{name} {tuple(bounds)} at {fps} fps is shorter than 2 frames (onset < apex < offset)")
    return shortest, longest


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be {bounds}, got {value}")


def _check_number(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value) \
            or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")


def _check_pair(name: str, bounds: object, low: float, high: float, open_low: bool = False,
                open_high: bool = False) -> None:
    """`bounds` must be (min, max) with low <= min <= max <= high (strict where the end is open)."""
    ok = isinstance(bounds, (tuple, list)) and len(bounds) == 2 and all(
        not isinstance(b, bool) and isinstance(b, (int, float, np.number)) and np.isfinite(b) for b in bounds)
    if ok:
        first, last = bounds
        ok = (low < first if open_low else low <= first) and first <= last and (
            last < high if open_high else last <= high)
    if not ok:
        interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise ValueError(f"{name} must be (min, max) with min <= max, both in {interval}, got {bounds!r}")
