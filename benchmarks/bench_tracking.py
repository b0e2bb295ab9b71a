"""Benchmark of face tracking on real recordings: speed, memory, and the choices behind the tracker.

On the real test videos (``../shared/data/real_video/`` beside the repository, or ``--videos``):

1. decoding alone and decoding + tracking (:func:`micronbert.data.faces.tracking.track_face`, default settings) in
   frames per second, with the backend calls and their time, on WolfgangLanger_Pexels.mp4 (640x360 H.264) and
   face_noface.mov (960x540 HEVC);
2. peak memory (RSS of a fresh process) after the first 100 frames, the whole video, and the whole video three
   times in a row as one stream: it must not grow with the length;
3. the motion estimators between detections, on the first frames of both videos: the Lucas-Kanade flow that
   track_face uses, re-detection with the face backend in a window around the last box on every frame, and
   template matching of the face box; time per frame, error of the eye centres against the backend run on the
   full frame every 4th frame, and frame-to-frame jitter (fraction of the inter-ocular distance);
4. how often the alignment would change for several ``realign_shift`` thresholds (the rule replayed on the
   tracked eyes of the whole Pexels clip);
5. the colour-histogram distance at the cuts and its largest value inside shots, on all five videos.

Writes ``benchmarks/results/bench_tracking_cpu_<date>.json`` and ``.md``. Run it alone.

Usage: python benchmarks/bench_tracking.py [--videos DIR]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from micronbert.data.faces import FaceDetection, OpenCVCascadeBackend  # noqa: E402
from micronbert.data.faces.tracking import CutDetector, FaceTrackConfig, NoFaceError, track_face  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEED_VIDEOS = ("WolfgangLanger_Pexels.mp4", "face_noface.mov")
ALL_VIDEOS = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "noface_face.mov", "no_face.mp4")
ESTIMATOR_FRAMES = 60
# where the estimators are compared: stretches in which the backend finds both eyes on most frames (the first
# frames of the Pexels clip look down, eyes nearly closed, and give no reference)
ESTIMATOR_START = {"WolfgangLanger_Pexels.mp4": 280, "face_noface.mov": 0}
REFERENCE_EVERY = 4
THRESHOLDS = (0.03, 0.05, 0.08, 0.1, 0.15)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "real_video",
                        help="folder of the real test videos")
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child is None and not all((args.videos / name).is_file() for name in ALL_VIDEOS):
        parser.error(f"{args.videos} does not hold the real test videos {', '.join(ALL_VIDEOS)}")
    return args


def decoded(path: Path, limit: int = 0, start: int = 0) -> Iterator[np.ndarray]:
    """Frames ``start`` .. ``start + limit - 1`` (``limit`` 0: to the end) as RGB arrays."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if limit and index >= start + limit:
                return
            if index >= start:
                yield frame.to_ndarray(format="rgb24")


def video_fps(path: Path) -> float:
    with av.open(str(path)) as container:
        return float(container.streams.video[0].average_rate)


def load() -> dict[str, object]:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    return {"uptime": uptime, "load_average_1_5_15min": [round(v, 2) for v in os.getloadavg()]}


# ------------------------------------------------------------------------------------------------ 1. speed


def decode_speed(path: Path) -> dict[str, float]:
    started = time.perf_counter()
    frames = sum(1 for _ in decoded(path))
    wall = time.perf_counter() - started
    return {"frames": frames, "seconds": round(wall, 3), "frames_per_second": round(frames / wall, 1)}


def tracking_speed(path: Path) -> tuple[dict[str, object], list]:
    """Decoding + tracking with the default settings; also returns the tracked eyes of every frame."""
    eyes = []
    started = time.perf_counter()
    track = track_face(path, FaceTrackConfig())
    for frame in track:
        eyes.append(frame.eyes)
    wall = time.perf_counter() - started
    summary = track.summary
    detect = sum(summary.detection_seconds.values())
    result = {
        "frames": summary.frames, "seconds": round(wall, 3), "frames_per_second": round(summary.frames / wall, 1),
        "face_frames": summary.face_frames, "shots": len(summary.shots),
        "faceless_ranges": [[r.start, r.end, r.reason] for r in summary.faceless_ranges],
        "detections": summary.detections,
        "detection_seconds": {k: round(v, 3) for k, v in summary.detection_seconds.items()},
        "ms_per_frame_without_detection": round(1000 * (wall - detect) / summary.frames, 2),
        "frames_per_second_without_detection": round(summary.frames / max(wall - detect, 1e-9), 1),
        "alignment_updates": len(summary.alignment_updates),
        "alignment_update_reasons": _count(u.reason for u in summary.alignment_updates),
        "events": summary.events,
    }
    return result, eyes


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


# ----------------------------------------------------------------------------------------------- 2. memory


def peak_rss_child(path: Path, limit: int, repeat: int) -> dict[str, object]:
    """Track in a fresh process and report its peak RSS."""
    command = [sys.executable, __file__, "--rss-child", str(path), "--limit", str(limit), "--repeat", str(repeat)]
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    return json.loads(output.strip().splitlines()[-1])


def rss_child(path: Path, limit: int, repeat: int) -> None:
    """Track ``limit`` frames (0: all) of the video, or the whole video ``repeat`` times as one stream of frames,
    and print the frame count and the memory (from /proc: ``ru_maxrss`` would carry the parent's peak over) as
    JSON."""
    start = proc_status_mb("VmRSS")
    if repeat == 1:
        track = track_face(path)
    else:
        frames = (frame for _ in range(repeat) for frame in decoded(path))
        track = track_face(frames, FaceTrackConfig(fps=video_fps(path)))
    count = 0
    try:
        for _ in track:
            count += 1
            if count == limit:
                track.close()
    except NoFaceError:
        pass
    print(json.dumps({"frames": count, "rss_start_mb": start, "rss_end_mb": proc_status_mb("VmRSS"),
                      "peak_rss_mb": proc_status_mb("VmHWM")}))


def proc_status_mb(key: str) -> float:
    """A memory figure of this process from /proc/self/status, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def memory(path: Path) -> list[dict[str, object]]:
    rows = []
    for label, limit, repeat in (("first 100 frames", 100, 1), ("whole video", 0, 1), ("whole video x3", 0, 3)):
        rows.append({"video": path.name, "run": label, **peak_rss_child(path, limit, repeat)})
    return rows


# ------------------------------------------------------------------------------------- 3. motion estimators


def reference_eyes(frames: list[np.ndarray], backend: OpenCVCascadeBackend) -> dict[int, np.ndarray]:
    """Eyes found by the backend on the full frame (only where both eyes were found), every few frames."""
    reference = {}
    for index in range(0, len(frames), REFERENCE_EVERY):
        found = [f for f in backend.detect(frames[index]) if not f.eyes_estimated]
        if found:
            reference[index] = np.array([found[0].left_eye, found[0].right_eye])
    return reference


def flow_eyes(frames: list[np.ndarray], fps: float) -> tuple[list[np.ndarray | None], float]:
    """track_face without confirmations (flow only); time per frame excludes the first detection."""
    config = FaceTrackConfig(fps=fps, verify_interval_s=1e6, lost_after_s=1e6)
    track = track_face(frames, config)
    eyes, started = [], None
    for frame in track:
        if started is None:
            started = time.perf_counter()
        eyes.append(None if frame.eyes is None else np.array(frame.eyes))
    return eyes, (time.perf_counter() - started) / max(1, len(frames) - 1)


def window_eyes(frames: list[np.ndarray], backend: OpenCVCascadeBackend) -> tuple[list, float]:
    """Re-detection with the backend in a window twice the last box, face at most 160 px wide, every frame."""
    first = backend.detect(frames[0])[0]
    box, eyes = first.box, np.array([first.left_eye, first.right_eye])
    out, started = [eyes], time.perf_counter()
    for frame in frames[1:]:
        found = _detect_in_window(frame, box, backend)
        if found is not None:
            box = found.box
            if not found.eyes_estimated:
                eyes = np.array([found.left_eye, found.right_eye])
        out.append(eyes)
    return out, (time.perf_counter() - started) / max(1, len(frames) - 1)


def _detect_in_window(frame: np.ndarray, box, backend: OpenCVCascadeBackend) -> FaceDetection | None:
    """The detection nearest the centre of a window twice the size of ``box`` (source pixels), or None."""
    height, width = frame.shape[:2]
    x, y, w, h = box
    x0, y0 = int(max(0, x - w / 2)), int(max(0, y - h / 2))
    x1, y1 = int(min(width, x + 1.5 * w)), int(min(height, y + 1.5 * h))
    scale = min(1.0, 160 / w)
    patch = cv2.resize(frame[y0:y1, x0:x1], (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    found = backend.detect(patch)
    if not found:
        return None
    centre = (patch.shape[1] / 2, patch.shape[0] / 2)
    best = min(found, key=lambda f: math.dist((f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2), centre))
    bx, by, bw, bh = best.box
    return dataclasses.replace(
        best, box=(x0 + bx / scale, y0 + by / scale, bw / scale, bh / scale),
        left_eye=(x0 + best.left_eye[0] / scale, y0 + best.left_eye[1] / scale),
        right_eye=(x0 + best.right_eye[0] / scale, y0 + best.right_eye[1] / scale))


def template_eyes(frames: list[np.ndarray], backend: OpenCVCascadeBackend) -> tuple[list, float]:
    """Template matching of the inner face box (grey, face about 96 px wide) in a window around it, frame to
    frame; translation only."""
    first = backend.detect(frames[0])[0]
    scale = min(1.0, 96 / first.box[2])
    eyes = np.array([first.left_eye, first.right_eye])
    x, y, w, h = (v * scale for v in first.box)
    inner = (int(x + 0.15 * w), int(y + 0.1 * h), int(0.7 * w), int(0.85 * h))
    previous = _grey(frames[0], scale)
    out, started = [eyes], time.perf_counter()
    for frame in frames[1:]:
        current = _grey(frame, scale)
        tx, ty, tw, th = inner
        template = previous[ty:ty + th, tx:tx + tw]
        margin = int(0.25 * tw)
        sx0, sy0 = max(0, tx - margin), max(0, ty - margin)
        window = current[sy0:ty + th + margin, sx0:tx + tw + margin]
        scores = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED)
        _, _, _, (bx, by) = cv2.minMaxLoc(scores)
        dx, dy = sx0 + bx - tx, sy0 + by - ty
        eyes = eyes + np.array([dx, dy]) / scale
        inner = (tx + dx, ty + dy, tw, th)
        previous = current
        out.append(eyes)
    return out, (time.perf_counter() - started) / max(1, len(frames) - 1)


def _grey(frame: np.ndarray, scale: float) -> np.ndarray:
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def eye_errors(eyes: list, reference: dict[int, np.ndarray]) -> dict[str, float]:
    errors = [np.linalg.norm(eyes[i] - truth, axis=1).max() / np.linalg.norm(truth[0] - truth[1])
              for i, truth in reference.items() if eyes[i] is not None]
    steps = [np.linalg.norm(b - a, axis=1).max() / np.linalg.norm(a[0] - a[1])
             for a, b in zip(eyes, eyes[1:]) if a is not None and b is not None]
    return {"error_median": round(float(np.median(errors)), 4), "error_p90": round(float(np.percentile(errors, 90)), 4),
            "jitter_median": round(float(np.median(steps)), 4), "compared_frames": len(errors)}


def estimators(path: Path, backend: OpenCVCascadeBackend) -> list[dict[str, object]]:
    start = ESTIMATOR_START[path.name]
    frames = list(decoded(path, ESTIMATOR_FRAMES, start))
    reference = reference_eyes(frames, backend)
    rows = []
    for name, (eyes, seconds) in (("lucas-kanade flow (track_face)", flow_eyes(frames, video_fps(path))),
                                  ("window re-detection every frame", window_eyes(frames, backend)),
                                  ("template matching", template_eyes(frames, backend))):
        rows.append({"video": path.name, "frames": f"{start}-{start + len(frames) - 1}", "estimator": name,
                     "ms_per_frame": round(1000 * seconds, 2),
                     **eye_errors(eyes, reference)})
    return rows


# ----------------------------------------------------------------------------------- 4. realign threshold


def realign_counts(eyes: list, fps: float) -> list[dict[str, object]]:
    """Replay the realign rule (an eye moves by more than the threshold x the inter-ocular distance at the last
    alignment) on a tracked eye trajectory."""
    track = [np.array(e) for e in eyes if e is not None]
    rows = []
    for threshold in THRESHOLDS:
        anchor, updates = track[0], 0
        for current in track[1:]:
            shift = np.linalg.norm(current - anchor, axis=1).max() / np.linalg.norm(anchor[0] - anchor[1])
            if shift > threshold:
                anchor, updates = current, updates + 1
        rows.append({"realign_shift": threshold, "updates": updates,
                     "mean_stretch_frames": round(len(track) / (updates + 1), 1),
                     "mean_stretch_s": round(len(track) / (updates + 1) / fps, 2)})
    return rows


# ---------------------------------------------------------------------------------------------- 5. cuts


def cut_distances(path: Path, threshold: float) -> dict[str, object]:
    detector = CutDetector()
    distances = [detector.distance(frame) for frame in decoded(path)][1:]
    cuts = [(i + 1, round(d, 3)) for i, d in enumerate(distances) if d > threshold]
    inside = [d for d in distances if d <= threshold]
    return {"video": path.name, "cuts_at": [c[0] for c in cuts], "cut_distances": [c[1] for c in cuts],
            "max_inside_shots": round(max(inside), 3)}


# ------------------------------------------------------------------------------------------------- report


def run(args: argparse.Namespace) -> dict[str, object]:
    backend = OpenCVCascadeBackend()
    load_before = load()
    speed, eyes_of = [], {}
    for name in SPEED_VIDEOS:
        path = args.videos / name
        tracked, eyes_of[name] = tracking_speed(path)
        speed.append({"video": name, "decode_only": decode_speed(path), "decode_and_track": tracked})
    mem = [row for name in SPEED_VIDEOS for row in memory(args.videos / name)]
    motion = [row for name in SPEED_VIDEOS for row in estimators(args.videos / name, backend)]
    pexels = args.videos / SPEED_VIDEOS[0]
    thresholds = realign_counts(eyes_of[SPEED_VIDEOS[0]], video_fps(pexels))
    threshold = FaceTrackConfig().cut_threshold
    cuts = [cut_distances(args.videos / name, threshold) for name in ALL_VIDEOS]
    return {"benchmark": "tracking", "machine": {**common.machine_info(), "opencv": cv2.__version__,
                                                 "pyav": av.__version__},
            "load_before": load_before, "load_after": load(), "config": FaceTrackConfig().to_dict(),
            "speed": speed, "memory": mem, "estimators": motion, "realign_thresholds": thresholds,
            "cut_threshold": threshold, "cuts": cuts}


def markdown(result: dict) -> str:
    machine = result["machine"]
    speed_rows = [{"video": s["video"], "decode only (frames/s)": s["decode_only"]["frames_per_second"],
                   "decode + track (frames/s)": s["decode_and_track"]["frames_per_second"],
                   "without detection (frames/s)": s["decode_and_track"]["frames_per_second_without_detection"],
                   "backend calls": json.dumps(s["decode_and_track"]["detections"]),
                   "backend seconds": json.dumps(s["decode_and_track"]["detection_seconds"]),
                   "face frames": f"{s['decode_and_track']['face_frames']}/{s['decode_and_track']['frames']}",
                   "alignments": s["decode_and_track"]["alignment_updates"]} for s in result["speed"]]
    lines = [
        f"# Face tracking benchmark ({machine['date']})", "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, shared with other jobs; Python {machine['python']}, "
        f"OpenCV {machine['opencv']}, PyAV {machine['pyav']}. Load before: `{result['load_before']['uptime']}`; "
        f"after: `{result['load_after']['uptime']}`. Times are upper bounds on an unloaded machine.", "",
        "## Decoding and tracking (default FaceTrackConfig)", "",
        common.markdown_table(speed_rows, list(speed_rows[0])), "",
        "## Peak memory (fresh process, RSS)", "",
        "RSS after the imports, at the end of the run, and the peak of the process (VmRSS, VmHWM).", "",
        common.markdown_table(result["memory"], ["video", "run", "frames", "rss_start_mb", "rss_end_mb",
                                                 "peak_rss_mb"]), "",
        f"## Motion between detections ({ESTIMATOR_FRAMES} frames; eye error against the backend on the full "
        f"frame every {REFERENCE_EVERY}th frame, jitter = median frame-to-frame eye step; fractions of the "
        "inter-ocular distance)", "",
        common.markdown_table(result["estimators"], ["video", "frames", "estimator", "ms_per_frame", "error_median",
                                                     "error_p90", "jitter_median", "compared_frames"]), "",
        "## Alignment updates against realign_shift (rule replayed on the tracked eyes of the Pexels clip)", "",
        common.markdown_table(result["realign_thresholds"], ["realign_shift", "updates", "mean_stretch_frames",
                                                             "mean_stretch_s"]), "",
        f"## Shot cuts (histogram distance, threshold {result['cut_threshold']})", "",
        common.markdown_table(result["cuts"], ["video", "cuts_at", "cut_distances", "max_inside_shots"]), "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rss_child is not None:
        rss_child(args.rss_child, args.limit, args.repeat)
        return 0
    result = run(args)
    common.write_results("bench_tracking", result, markdown(result))
    sys.stdout.write(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
