"""Recognition of new samples: ``micronbert predict``.

From two images (onset, apex) or from a clip (a folder of numbered frames or a video file). A clip is a raw
recording by default: the face is followed through it (:func:`micronbert.data.faces.read_face_clip`: detection once
per shot, tracking in between) and the model reads the aligned face crops; frames without a face are reported and
left out. ``face="none"`` reads clips that are already face crops as they are. The apex is found automatically:
every frame is compared with the first (onset) frame by DMA, and the frame whose change is largest (the largest mean
of the relative change map, :func:`apex_scores`) is taken; ``apex_stride`` > 1 scores every stride-th frame first
and then the frames around the best (:func:`micronbert.export.apex_search`). Each sample gets a picture (onset,
apex, DMA change map, relative change map, the surprise map when the model has a volatility head, and PoI saliency
over the face, probabilities as bars) and a JSON-ready record. A folder written by ``micronbert export`` (ONNX)
predicts through ONNX Runtime.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from micronbert.data.faces import FaceTrackConfig, NoFaceError, read_face_clip
from micronbert.data.frames import IMAGE_EXTENSIONS, frame_number, list_frames, read_frame
from micronbert.data.transforms import resize_square, to_model_input
from micronbert.data.video import VIDEO_EXTENSIONS
from micronbert.export import EagerScorer, OnnxRecognizer, apex_search, is_onnx_export
from micronbert.io import read_json_mapping
from micronbert.model import MicronBERT, change_map, load, relative_change_map, surprise_map
from micronbert.train.device import pick_device
from micronbert.viz import pair_maps_figure, patch_map_to_image, save_figure_atomically

FACE_MODES = ("track", "none")
FOLDER_FPS = 30.0


@dataclass
class Prediction:
    """The result for one sample; ``apex_frame`` / ``apex_score`` are set when the apex was searched."""

    name: str
    probabilities: dict[str, float]
    predicted: str
    onset_frame: str
    apex_frame: str
    apex_searched: bool
    apex_score: float | None = None
    figure: str | None = None
    faceless: list[dict[str, Any]] | None = None


class Predictor:
    """A fine-tuned model with its class names, on the model's device; see :func:`load_predictor`."""

    def __init__(self, model: MicronBERT, class_names: Sequence[str]) -> None:
        if model.head is None:
            raise ValueError("the model has no recognition head: fine-tune it first (micronbert finetune)")
        if len(class_names) != model.config.num_classes:
            raise ValueError(f"{len(class_names)} class names for a head of {model.config.num_classes} classes")
        self.model = model.eval()
        self.class_names = list(class_names)
        self.size = model.config.img_size
        self.patch_size = model.config.patch_size

    @torch.no_grad()
    def pair(self, onset: np.ndarray, apex: np.ndarray) -> dict[str, Any]:
        """Probabilities (classes,), DMA change map (N,), relative change map (N,), saliency (N,) and, when the
        model has a volatility head, surprise map (N,) of one uint8 RGB pair."""
        if onset.shape != apex.shape:
            raise ValueError(f"onset and apex images differ in size: {onset.shape[:2]} vs {apex.shape[:2]}")
        tokens = self.model.encode(to_model_input(np.stack([resize_square(apex, self.size),
                                                            resize_square(onset, self.size)])).to(self.model.device))
        apex_tokens, onset_tokens = tokens[:1], tokens[1:]
        out = self.model.recognize_tokens(onset_tokens=onset_tokens, apex_tokens=apex_tokens)
        relative = self.model.relative_change(apex_tokens=apex_tokens, onset_tokens=onset_tokens,
                                              diagonal=out["dma_map"])
        maps = {"probabilities": torch.softmax(out["logits"], dim=1)[0], "change": change_map(out["dma_map"])[0],
                "relative_change": relative[0], "saliency": out["saliency"][0]}
        if self.model.volatility_head is not None:
            maps["surprise"] = surprise_map(relative, self.model.volatility(apex_tokens))[0]
        return {name: values.float().cpu().numpy() for name, values in maps.items()}

    def find_apex(self, frames: Sequence[np.ndarray], batch_size: int = 16, stride: int = 1) -> tuple[int, np.ndarray]:
        """Index of the frame (after the first) that changes most against frame 0, and every frame's score
        (:func:`apex_scores`; with ``stride`` > 1 the strided search, NaN for the frames it did not score)."""
        if stride == 1:
            score = apex_scores(self.model, frames, batch_size)
            return int(np.argmax(score[1:]) + 1), score
        return apex_search(EagerScorer(self.model), frames, stride=stride, batch_size=batch_size)


@torch.no_grad()
def apex_scores(model: MicronBERT, frames: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
    """How much each uint8 RGB frame of a clip changed against the first (the onset): the mean over patches of
    the relative change map (:meth:`MicronBERT.relative_change`; 0 for the onset itself), shape (frames,).

    The relative map rather than the mean DMA diagonal: on synthetic clips without nuisances the apex it picks
    with the demo's pre-trained model is within 5 frames of the true one for 70 % of the clips, against 45 % for
    1 − mean a (``benchmarks/bench_apex.py``, which also shows what head motion and flicker do to every scorer).
    """
    if len(frames) < 2:
        raise ValueError(f"a clip needs at least two frames to find an apex, got {len(frames)}")
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise ValueError(f"the clip's frames differ in size: {sorted(shapes)}")
    model.eval()
    size, device = model.config.img_size, model.device
    onset_tokens = model.encode(to_model_input(resize_square(frames[0], size)).to(device))
    onset_diagonal = model.dma(onset_tokens, onset_tokens)[1]
    scores = []
    for start in range(0, len(frames), batch_size):
        batch = np.stack([resize_square(frame, size) for frame in frames[start:start + batch_size]])
        tokens = model.encode(to_model_input(batch).to(device))
        diagonal = model.dma(tokens, onset_tokens.expand(len(batch), -1, -1))[1]
        scores.append(relative_change_map(diagonal, onset_diagonal.expand_as(diagonal)).mean(dim=1))
    return torch.cat(scores).float().cpu().numpy()


def load_predictor(path: str | Path, class_names: Sequence[str] | None = None,
                   device: str = "auto") -> Predictor | OnnxRecognizer:
    """A predictor from a ``micronbert finetune`` output folder (model/ + classes.json) or a checkpoint
    folder with ``class_names`` given, on ``device`` (``auto``: the GPU when there is one); from a ``micronbert
    export`` folder, the ONNX Runtime recognizer (on the CPU)."""
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"model not found: {folder}")
    if is_onnx_export(folder):
        return OnnxRecognizer(folder, class_names)
    checkpoint = folder / "model" if (folder / "model").is_dir() else folder
    model = load(checkpoint)
    if class_names is None:
        classes_file = folder / "classes.json"
        if classes_file.is_file():
            class_names = _class_names(classes_file)
        else:
            class_names = [str(i) for i in range(model.config.num_classes)]
    return Predictor(model.to(pick_device(device)), class_names)


def _class_names(path: Path) -> list[str]:
    names = read_json_mapping(path, "class list").get("classes")
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{path}: 'classes' must be a list of class names, got {names!r}")
    return names


def read_clip(path: str | Path) -> tuple[list[np.ndarray], list[str]]:
    """Frames of a clip (a folder of numbered images or a video file) and a name for each frame
    (the file path, or ``video.mp4#k`` with k counted from 1)."""
    clip = Path(path)
    if clip.is_dir():
        files = list_frames(clip)
        if not files:
            raise ValueError(f"{clip}: no numbered image files")
        return [read_frame(file) for file in files], [str(file) for file in files]
    if not clip.is_file():
        raise FileNotFoundError(f"clip not found: {clip}")
    if clip.suffix.lower() not in VIDEO_EXTENSIONS:
        raise ValueError(f"{clip}: not a frame folder or a video ({', '.join(VIDEO_EXTENSIONS)})")
    import av

    try:
        with av.open(str(clip)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except av.error.FFmpegError as err:
        raise ValueError(f"{clip}: cannot decode the video ({err})") from None
    if not frames:
        raise ValueError(f"{clip}: the video holds no frames")
    return frames, [f"{clip}#{index + 1}" for index in range(len(frames))]


def read_clip_faces(path: str | Path, size: int) -> tuple[list[np.ndarray], list[str], list[dict[str, Any]]]:
    """The aligned face crops (``size`` pixels) of a raw clip, a name for each (as :func:`read_clip`) and the frame
    ranges without a face (frame numbers from 1, with the reason); frame folders are followed as 30 fps."""
    clip = Path(path)
    if not clip.exists():
        raise FileNotFoundError(f"clip not found: {clip}")
    if clip.is_file() and clip.suffix.lower() not in VIDEO_EXTENSIONS:
        raise ValueError(f"{clip}: not a frame folder or a video ({', '.join(VIDEO_EXTENSIONS)})")
    files = list_frames(clip) if clip.is_dir() else []
    if clip.is_dir() and not files:
        raise ValueError(f"{clip}: no numbered image files")
    try:
        crops, summary = read_face_clip(clip, FaceTrackConfig(size=size, fps=FOLDER_FPS if clip.is_dir() else None))
    except NoFaceError as err:
        raise ValueError(f"{err}; if the clip is already a face crop, give --face none") from None
    indices = summary.face_frame_indices()
    names = [str(files[i]) for i in indices] if files else [f"{clip}#{i + 1}" for i in indices]
    faceless = [{"onset": r.start + 1, "offset": r.end + 1, "reason": r.reason} for r in summary.faceless_ranges]
    return list(crops), names, faceless


def _figure(predictor: Predictor | OnnxRecognizer, onset: np.ndarray, apex: np.ndarray, maps: dict[str, Any],
            title: str, path: Path) -> Path:
    grid = predictor.size // predictor.patch_size
    onset_small, apex_small = resize_square(onset, predictor.size), resize_square(apex, predictor.size)
    image = {kind: patch_map_to_image(maps[kind], grid, grid, predictor.size, predictor.size)
             for kind in ("change", "relative_change", "saliency", "surprise") if kind in maps}
    figure = pair_maps_figure(onset_small, apex_small, image["change"], image["saliency"], title=title,
                              probabilities=maps["probabilities"].tolist(), class_names=predictor.class_names,
                              relative_change=image["relative_change"], surprise=image.get("surprise"))
    return save_figure_atomically(figure, path)


def _prediction(predictor: Predictor | OnnxRecognizer, name: str, onset: np.ndarray, apex: np.ndarray, onset_name: str,
                apex_name: str, out_dir: Path | None, apex_score: float | None) -> Prediction:
    maps = predictor.pair(onset, apex)
    probabilities = {cls: float(p) for cls, p in zip(predictor.class_names, maps["probabilities"])}
    predicted = predictor.class_names[int(np.argmax(maps["probabilities"]))]
    result = Prediction(name, probabilities, predicted, onset_name, apex_name, apex_score is not None, apex_score)
    if out_dir is not None:
        title = f"{name}: {predicted} ({probabilities[predicted]:.0%})"
        result.figure = str(_figure(predictor, onset, apex, maps, title, out_dir / f"{_safe(name)}.png"))
    return result


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "sample"


def predict_pair(predictor: Predictor | OnnxRecognizer, onset_path: str | Path, apex_path: str | Path,
                 out_dir: str | Path | None = None) -> Prediction:
    """Classify an (onset, apex) pair of image files; draws ``out_dir/<apex name>.png`` when asked."""
    onset, apex = read_frame(onset_path), read_frame(apex_path)
    if onset.shape != apex.shape:
        raise ValueError(f"{onset_path} and {apex_path} differ in size: {onset.shape[:2]} vs {apex.shape[:2]}")
    name = Path(apex_path).stem
    return _prediction(predictor, name, onset, apex, str(onset_path), str(apex_path),
                       Path(out_dir) if out_dir else None, None)


def predict_clip(predictor: Predictor | OnnxRecognizer, clip: str | Path, out_dir: str | Path | None = None,
                 face: str = "track", apex_stride: int = 1) -> Prediction:
    """Classify a clip: its first frame (with a face) is the onset and the apex is found by DMA (see the module
    doc). ``face``: ``track`` follows the face through a raw clip, ``none`` reads frames that are face crops."""
    if face not in FACE_MODES:
        raise ValueError(f"face must be one of {FACE_MODES}, got {face!r}")
    faceless = None
    if face == "track":
        frames, names, faceless = read_clip_faces(clip, predictor.size)
    else:
        frames, names = read_clip(clip)
    try:
        apex_index, scores = predictor.find_apex(frames, stride=apex_stride)
    except ValueError as err:
        raise ValueError(f"{clip}: {err}") from None
    result = _prediction(predictor, Path(clip).name, frames[0], frames[apex_index], names[0], names[apex_index],
                         Path(out_dir) if out_dir else None, float(scores[apex_index]))
    result.faceless = faceless
    return result


def clips_in(folder: str | Path) -> list[Path]:
    """The clips of a batch folder: sub-folders holding numbered images, and video files, sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"batch folder not found: {root}")
    clips = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS and _numbered(p) for p in entry.iterdir()):
            clips.append(entry)
        elif entry.is_file() and entry.suffix.lower() in VIDEO_EXTENSIONS:
            clips.append(entry)
    return clips


def _numbered(path: Path) -> bool:
    try:
        frame_number(path)
    except ValueError:
        return False
    return True


def predict_batch(predictor: Predictor | OnnxRecognizer, folder: str | Path, out_dir: str | Path | None = None,
                  progress: bool = True, face: str = "track",
                  apex_stride: int = 1) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Classify every clip of ``folder`` (see :func:`clips_in`); clips that fail are listed with the reason."""
    from tqdm import tqdm

    clips = clips_in(folder)
    if not clips:
        raise ValueError(f"{folder}: no clips (frame folders or videos) found")
    results, failed = [], []
    for clip in tqdm(clips, desc="clips", unit="clip", disable=not progress, file=sys.stderr):
        try:
            results.append(predict_clip(predictor, clip, out_dir, face, apex_stride))
        except (ValueError, FileNotFoundError) as err:
            failed.append((str(clip), str(err)))
    return results, failed
