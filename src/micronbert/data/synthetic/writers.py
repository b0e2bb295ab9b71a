"""On-disk synthetic datasets in real layouts, so the real readers are exercised.

Layout written by `write_synthetic_dataset(out_dir, config)`::

    out_dir/
      synth_config.json
      CASME2/
        CASME2-coding-20140508.xlsx        CASME II column names, incl. the two blank-header columns
        Cropped/sub01/EP01_03/reg_img57.jpg ...   frames onset..offset, absolute numbers, no padding
        synthetic_ground_truth.csv / .json        per clip: subject, clip, onset, apex, offset, AUs, classes
        synthetic_masks/sub01/EP01_03.png         AU-region mask, onset -> apex, in the onset frame
        synthetic_masks/sub01/EP01_03_face.png    face mask (face, hair, glasses) of the onset frame
      unlabeled/
        frames/vid01/img1.jpg ...          1-based frame numbers
        videos/vid01.mp4                   decoded frame k (0-based) is img{k+1}.jpg
        synthetic_ground_truth.json        micro-expressions inside each video

The ground-truth JSON files hold the seeds of every face and scene: `scene_from_ground_truth` rebuilds
the `Scene` of any clip or video, whose `pair(a, b)` gives the masks for any frame pair.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
from openpyxl import Workbook
from tqdm import tqdm

from ...io import check_positive_int
from .actions import MicroExpression, casme2_emotion, format_action_units, sample_expression
from .config import SynthConfig
from .faces import SyntheticFace
from .nuisance import NuisanceConfig
from .render import Scene

CASME2_DIR = "CASME2"
CODING_SHEET = "CASME2-coding-20140508.xlsx"
CODING_COLUMNS = (
    "Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
    "Estimated Emotion",
)
GROUND_TRUTH_STEM = "synthetic_ground_truth"
UNLABELED_DIR = "unlabeled"
VIDEO_CODECS = ("libx264", "h264", "mpeg4")
SEED_LIMIT = 2**31


@dataclass(frozen=True)
class SyntheticDataset:
    """Where `write_synthetic_dataset` put everything."""

    root: Path
    casme2_root: Path
    coding_sheet: Path
    ground_truth_csv: Path
    ground_truth_json: Path
    unlabeled_root: Path
    unlabeled_ground_truth_json: Path
    frame_folders: tuple[Path, ...]
    videos: tuple[Path, ...]
    n_clips: int


def write_synthetic_dataset(out_dir: str | os.PathLike, config: SynthConfig | None = None, *, workers: int = 1,
                            progress: bool = False) -> SyntheticDataset:
    """Generate a CASME II-like labelled tree and unlabeled long videos under `out_dir`.

    `out_dir` must not exist or be empty. Everything is built in a sibling temporary folder that is renamed
    into place at the end, so an interrupted run leaves no half-written dataset. ``workers > 1`` renders subjects
    and videos in that many processes; the output does not depend on the number of workers. ``progress`` shows a bar
    over subjects and videos.
    """
    config = config if config is not None else SynthConfig()
    if not isinstance(config, SynthConfig):
        raise ValueError(f"config must be a SynthConfig, got {type(config).__name__}")
    check_positive_int("workers", workers)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder; choose a new output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        _write_json(partial / "synth_config.json", config.to_dict())
        jobs = [(_write_subject, partial / CASME2_DIR, config, subject) for subject in range(1, config.subjects + 1)]
        jobs += [(_write_unlabeled_video, partial / UNLABELED_DIR, config, video)
                 for video in range(1, config.unlabeled_videos + 1)]
        results = _run_jobs(jobs, workers, progress)
        clips = [entry for subject_entries in results[:config.subjects] for entry in subject_entries]
        n_clips = _write_casme2_tables(partial / CASME2_DIR, config, clips)
        folders, videos = _write_unlabeled_tables(partial / UNLABELED_DIR, config, results[config.subjects:])
        if out.exists():
            out.rmdir()
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    casme2 = out / CASME2_DIR
    unlabeled = out / UNLABELED_DIR
    return SyntheticDataset(
        root=out,
        casme2_root=casme2,
        coding_sheet=casme2 / CODING_SHEET,
        ground_truth_csv=casme2 / f"{GROUND_TRUTH_STEM}.csv",
        ground_truth_json=casme2 / f"{GROUND_TRUTH_STEM}.json",
        unlabeled_root=unlabeled,
        unlabeled_ground_truth_json=unlabeled / f"{GROUND_TRUTH_STEM}.json",
        frame_folders=tuple(out / p.relative_to(partial) for p in folders),
        videos=tuple(out / p.relative_to(partial) for p in videos),
        n_clips=n_clips,
    )


def render_nuisance(config: SynthConfig) -> NuisanceConfig:
    """Nuisances used for rendering; JPEG is left to the files themselves (no double compression)."""
    return NuisanceConfig(jpeg_quality=None).scaled(config.nuisance_strength)


def scene_from_ground_truth(ground_truth: Mapping, entry: Mapping) -> Scene:
    """Rebuild the `Scene` of one clip or video from a loaded ground-truth JSON and one of its entries."""
    try:
        expressions = [MicroExpression.from_dict(e) for e in entry["expressions"]]
        return Scene(
            face=SyntheticFace.sample(int(entry["face_seed"])),
            expressions=expressions,
            fps=float(ground_truth["fps"]),
            size=int(ground_truth["size"]),
            nuisance=NuisanceConfig.from_dict(ground_truth["nuisance"]),
            seed=int(entry["scene_seed"]),
        )
    except KeyError as error:
        raise ValueError(f"ground-truth entry lacks the field {error}; was it written by this version?") from None


def read_clip_masks(casme2_root: str | os.PathLike, table: pd.DataFrame, size: int, column: str = "mask"
                    ) -> list[np.ndarray]:
    """Boolean (size, size) ground-truth masks of the clips in a sample table read from a synthetic CASME II tree:
    ``column`` ``mask`` for the AU regions, ``face_mask`` for the face (both of the onset frame)."""
    root = Path(casme2_root)
    csv_path = root / f"{GROUND_TRUTH_STEM}.csv"
    truth = pd.read_csv(csv_path, dtype={"clip": str, "subject_folder": str})
    if column not in truth.columns:
        raise ValueError(f"{csv_path} has no {column!r} column (written by an older micronbert?); write the "
                         "synthetic data again")
    paths = {(row["subject_folder"], row["clip"]): root / row[column] for _, row in truth.iterrows()}
    masks = []
    for row in table.itertuples(index=False):
        key = (str(row.subject).split("/")[-1], str(row.clip))
        if key not in paths:
            raise ValueError(f"{csv_path} has no clip {key[0]}/{key[1]}")
        mask = cv2.imread(str(paths[key]), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise ValueError(f"could not read the mask {paths[key]}")
        masks.append(cv2.resize((mask > 127).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0)
    return masks


def write_coding_sheet(path: Path, rows: Sequence[Mapping]) -> None:
    """Write a CASME II coding sheet (.xlsx) with the real column names, blank-header columns included."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Sheet1"
    sheet.append(list(CODING_COLUMNS))
    for row in rows:
        aus = row["aus"]
        sheet.append([
            row["subject"], row["clip"], None, row["onset"], row["apex"], row["offset"], None,
            aus[0] if len(aus) == 1 else format_action_units(aus),
            row["emotion"],
        ])
    tmp = path.with_name(f".{path.name}.tmp")
    workbook.save(tmp)
    os.replace(tmp, path)


def _run_jobs(jobs: list[tuple], workers: int, progress: bool) -> list:
    """Results of ``function(*args)`` for each job ``(function, *args)``, in the jobs' order."""
    with tqdm(total=len(jobs), desc="synthetic data", unit="item", disable=not progress) as bar:
        if workers == 1 or len(jobs) <= 1:
            results = []
            for function, *args in jobs:
                results.append(function(*args))
                bar.update()
            return results
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context,
                                 initializer=cv2.setNumThreads, initargs=(1,)) as pool:
            futures = [pool.submit(function, *args) for function, *args in jobs]
            try:
                for future in as_completed(futures):
                    future.result()  # the first failure stops the run
                    bar.update()
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
            return [future.result() for future in futures]


def _write_subject(root: Path, config: SynthConfig, subject: int) -> list[dict]:
    """Render one labelled subject's clips and masks; return the clips' ground-truth entries."""
    nuisance = render_nuisance(config)
    face_seed = _derive_seed(config.seed, 1, subject)
    face = SyntheticFace.sample(face_seed)
    entries = []
    for index in range(config.clips_per_subject):
        rng = np.random.default_rng([config.seed, 2, subject, index])
        objective_class = config.classes[(subject - 1 + index) % len(config.classes)]
        onset = int(rng.integers(1, config.fps + 1))
        expression = sample_expression(rng, objective_class, config.fps, onset, config.amplitude,
                                       config.duration_s)
        clip = f"EP{index + 1:02d}_{int(rng.integers(1, 10)):02d}"
        scene_seed = int(rng.integers(SEED_LIMIT))
        scene = Scene(face, [expression], config.fps, config.size, nuisance, scene_seed)
        timing = scene.timings[0]
        clip_dir = root / "Cropped" / f"sub{subject:02d}" / clip
        frames = range(timing.onset, timing.offset + 1)
        _write_jpegs(clip_dir, "reg_img", frames, (scene.frame(f) for f in frames), config.jpeg_quality)
        mask_path = root / "synthetic_masks" / f"sub{subject:02d}" / f"{clip}.png"
        face_mask_path = mask_path.with_name(f"{clip}_face.png")
        truth = scene.pair(timing.onset, timing.apex)
        _write_mask(mask_path, truth.au_mask)
        _write_mask(face_mask_path, truth.face_mask)
        entries.append({
            "subject": subject, "subject_folder": f"sub{subject:02d}", "clip": clip,
            "onset": timing.onset, "apex": timing.apex, "offset": timing.offset,
            "aus": list(expression.aus), "action_units": format_action_units(expression.aus),
            "objective_class": objective_class, "emotion": casme2_emotion(objective_class, expression.aus),
            "amplitude": expression.amplitude, "face_seed": face_seed, "scene_seed": scene_seed,
            "mask": mask_path.relative_to(root).as_posix(),
            "face_mask": face_mask_path.relative_to(root).as_posix(), "expressions": [expression.to_dict()],
        })
    return entries


def _write_casme2_tables(root: Path, config: SynthConfig, entries: list[dict]) -> int:
    """Coding sheet and ground truth of the labelled clips; returns their number."""
    root.mkdir(parents=True, exist_ok=True)
    write_coding_sheet(root / CODING_SHEET, entries)
    columns = ["subject", "subject_folder", "clip", "onset", "apex", "offset", "action_units",
               "objective_class", "emotion", "amplitude", "face_seed", "scene_seed", "mask", "face_mask"]
    table = pd.DataFrame([{c: e[c] for c in columns} for e in entries], columns=columns)
    _write_csv(root / f"{GROUND_TRUTH_STEM}.csv", table)
    _write_json(root / f"{GROUND_TRUTH_STEM}.json",
                _ground_truth_header(config, render_nuisance(config)) | {"clips": entries})
    return len(entries)


def _write_unlabeled_video(root: Path, config: SynthConfig, video: int) -> tuple[Path | None, Path | None, dict]:
    """Render one unlabeled video (frame folder and/or .mp4); return their paths and its ground-truth entry."""
    name = f"vid{video:02d}"
    face_seed = _derive_seed(config.seed, 3, video)
    rng = np.random.default_rng([config.seed, 4, video])
    expressions = _video_expressions(rng, config)
    scene_seed = int(rng.integers(SEED_LIMIT))
    scene = Scene(SyntheticFace.sample(face_seed), expressions, config.fps, config.size, render_nuisance(config),
                  scene_seed)
    frame_numbers = range(1, config.unlabeled_frames + 1)
    frames = (scene.frame(f) for f in frame_numbers)
    folder = root / "frames" / name if config.write_frame_folders else None
    video_path = root / "videos" / f"{name}.mp4" if config.write_mp4 else None
    if video_path is not None:
        frames = _tee_to_video(frames, video_path, config.fps, config.size)
    if folder is not None:
        _write_jpegs(folder, "img", frame_numbers, frames, config.jpeg_quality)
    elif video_path is not None:
        deque(frames, maxlen=0)
    events = [{
        "onset": timing.onset, "apex": timing.apex, "offset": timing.offset,
        "aus": list(expression.aus), "action_units": format_action_units(expression.aus),
        "objective_class": expression.objective_class,
        "emotion": casme2_emotion(expression.objective_class, expression.aus),
    } for expression, timing in zip(expressions, scene.timings)]
    entry = {"video": name, "n_frames": config.unlabeled_frames, "first_frame": 1, "face_seed": face_seed,
             "scene_seed": scene_seed, "events": events, "expressions": [e.to_dict() for e in expressions]}
    return folder, video_path, entry


def _write_unlabeled_tables(root: Path, config: SynthConfig, videos: list[tuple[Path | None, Path | None, dict]]
                            ) -> tuple[list[Path], list[Path]]:
    """Ground truth of the unlabeled videos; returns their frame folders and .mp4 files."""
    root.mkdir(parents=True, exist_ok=True)
    _write_json(root / f"{GROUND_TRUTH_STEM}.json",
                _ground_truth_header(config, render_nuisance(config)) | {"videos": [entry for *_, entry in videos]})
    return [f for f, _, _ in videos if f is not None], [v for _, v, _ in videos if v is not None]


def _video_expressions(rng: np.random.Generator, config: SynthConfig) -> list[MicroExpression]:
    """Micro-expressions at exponential gaps (mean 1 / rate) that fit inside frames 1..unlabeled_frames."""
    expressions: list[MicroExpression] = []
    cursor = 1
    mean_gap = config.fps / config.expressions_per_second
    while True:
        onset = cursor + int(rng.exponential(mean_gap))
        objective_class = config.classes[int(rng.integers(len(config.classes)))]
        expression = sample_expression(rng, objective_class, config.fps, onset, config.amplitude, config.duration_s)
        offset = expression.frame_timing(config.fps).offset
        if offset > config.unlabeled_frames:
            return expressions
        expressions.append(expression)
        cursor = offset + 1


def _tee_to_video(frames: Iterator[np.ndarray], path: Path, fps: int, size: int) -> Iterator[np.ndarray]:
    """Pass frames through while encoding them into an .mp4 (H.264 when available, else MPEG-4 part 2), the same
    bytes on every run: x264 runs on one thread at a constant quantiser (with its own threads, or with CRF rate
    control, the same frames encoded twice in one process, or in two, gave different files on this machine)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = video_codec()
    tmp = path.with_name(f".{path.name}.tmp")
    time_base = Fraction(1, fps)
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        if codec == "libx264":
            stream.options = {"qp": "18", "preset": "veryfast", "x264-params": "threads=1"}
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = index, time_base
            container.mux(stream.encode(picture))
            yield frame
        container.mux(stream.encode(None))
    os.replace(tmp, path)


def video_codec() -> str:
    """The first of libx264, h264, mpeg4 that this PyAV build can encode."""
    for name in VIDEO_CODECS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # PyAV raises different error types for unknown and decode-only codecs
            continue
        return name
    raise ValueError(f"PyAV has none of the encoders {VIDEO_CODECS}")


def _write_jpegs(folder: Path, prefix: str, numbers: Sequence[int] | range, frames: Iterator[np.ndarray],
                 quality: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    for number, frame in zip(numbers, frames, strict=True):
        path = folder / f"{prefix}{number}.jpg"
        if not cv2.imwrite(str(path), np.ascontiguousarray(frame[..., ::-1]), params):
            raise ValueError(f"could not write {path}")


def _write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), mask.astype(np.uint8) * 255):
        raise ValueError(f"could not write {path}")


def _ground_truth_header(config: SynthConfig, nuisance: NuisanceConfig) -> dict:
    return {"fps": config.fps, "size": config.size, "jpeg_quality": config.jpeg_quality,
            "nuisance": nuisance.to_dict(), "config": config.to_dict()}


def _derive_seed(*parts: int) -> int:
    return int(np.random.default_rng(list(parts)).integers(SEED_LIMIT))


def _write_json(path: Path, data: Mapping) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, path)
