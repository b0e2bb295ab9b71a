"""Benchmark of spotting in raw recordings (``micronbert spot``): frames per second and peak memory, on this CPU.

The input is a 640x360, 30 fps H.264 recording built in a temporary folder (never kept):

- ``real`` (default): the frames of ``WolfgangLanger_Pexels.mp4`` (``../shared/data/real_video/`` beside the
  repository; 640x360, 23.98 fps, 472 frames) played forward then backward again and again (no cut) and encoded
  at 30 fps, so the face moves 1.25 times faster than in the original;
- ``synthetic``: a CAS(ME)^2-like synthetic long video (``micronbert.data.synthetic.write_long_videos``, a 160-pixel
  face with micro- and macro-expressions, blinks and head movements) enlarged to 320 pixels on a 640x360 canvas
  (edges replicated), played forward and backward the same way.

Measured on a recording of ``--seconds`` seconds, each stage once, frames/s = recording frames / wall seconds:

1. decoding alone (PyAV to RGB arrays, as the tracker decodes);
2. decoding + face tracking (``track_face`` with the spotter's crop geometry);
3. each spotter's signal + peaks (``Spotter.trace``) on the crops of stage 2, stored beforehand;
4. end to end: ``spot_recording`` (decoding, tracking, signal, peaks, faceless frames masked, the faces of the best
   intervals read again for the thumbnails), then the thumbnails alone (``crops_at``, part of the end-to-end time)
   and writing the CSV, JSON and timeline figure (``write_recording_spot``, not part of it).

Spotters: ``flow-roi``, ``micronbert`` (the ``tiny`` model) and ``micronbert-official-small`` (on the first
``--official-seconds`` seconds only); μ-BERT models are randomly initialised, which changes nothing to the speed.

Memory: the end-to-end ``flow-roi`` run on a ``--short-minutes`` and a ``--long-minutes`` recording, each in a fresh
process; peak resident memory (VmHWM of /proc/self/status: ``ru_maxrss`` survives ``exec`` and could carry the
parent's peak) and the difference between the two. Streaming holds if the difference is small.

Torch and OpenCV run with ``--threads`` threads; PyAV's decoder uses FFmpeg's automatic threading (as the library
sets it). The machine is shared: the load average and the busiest other processes are recorded at the start and the
end, and CPU seconds are given beside wall seconds (CPU well below wall means the process waited for a core).

Writes ``bench_spot_cpu_<date>.json`` and ``.md`` (``bench_spot_quick_...`` with ``--quick``) into ``--out``.

Usage: python benchmarks/bench_spot.py [--source real|synthetic] [--seconds 60] [--long-minutes 10]
       [--short-minutes 1] [--spotters flow-roi micronbert micronbert-official-small] [--official-seconds 3]
       [--threads 1] [--quick] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from micronbert.data.faces import FaceTrackConfig, crops_at, track_face  # noqa: E402
from micronbert.data.synthetic import LongVideoConfig, write_long_videos  # noqa: E402
from micronbert.io import write_json_atomically, write_text_atomically  # noqa: E402
from micronbert.model.factory import ModelInitConfig  # noqa: E402
from micronbert.spotting.recording import (  # noqa: E402
    FIRST_FRAME,
    MAX_THUMBNAILS,
    spot_recording,
    tracking_for,
    write_recording_spot,
)
from micronbert.spotting.spotters import MicronBertSpotterConfig, Spotter, SpotVideo, get_spotter  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_VIDEO = REPO_ROOT / ".." / "shared" / "data" / "real_video" / "WolfgangLanger_Pexels.mp4"
WIDTH, HEIGHT, FPS = 640, 360, 30
TARGET_FPS = 30.0
SYNTHETIC_CLIP_S = 20
SYNTHETIC_FACE = 160
SPOTTER_MODELS = {"flow-roi": None, "micronbert": "tiny", "micronbert-official-small": "official-small"}
TOP_PROCESSES = 6


# ------------------------------------------------------------------------------------------------ options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("real", "synthetic"), default="real",
                        help="the face of the recording (real: the Pexels clip beside the repository)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the recording of the speed stages")
    parser.add_argument("--short-minutes", type=float, default=1.0, help="the shorter recording of the memory runs")
    parser.add_argument("--long-minutes", type=float, default=10.0, help="the longer recording of the memory runs")
    parser.add_argument("--spotters", nargs="+", choices=tuple(SPOTTER_MODELS),
                        default=list(SPOTTER_MODELS), help="spotters to time")
    parser.add_argument("--official-seconds", type=float, default=3.0,
                        help="length of the recording for micronbert-official-small")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    parser.add_argument("--quick", action="store_true",
                        help="short recordings (8 s for speed, 2 s for official-small, 0.1 and 0.5 min for memory)")
    parser.add_argument("--out", type=Path, default=common.RESULTS, help="folder of the result files")
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.official_seconds, args.short_minutes, args.long_minutes = 8.0, 2.0, 0.1, 0.5
    if min(args.seconds, args.official_seconds) < 2 or not 0 < args.short_minutes < args.long_minutes:
        parser.error("--seconds and --official-seconds must be >= 2, and 0 < --short-minutes < --long-minutes")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.memory_child is None and args.source == "real" and not REAL_VIDEO.is_file():
        parser.error(f"{REAL_VIDEO.resolve()} is absent (the shared folder beside the repository); "
                     "run with --source synthetic")
    return args


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


# ---------------------------------------------------------------------------------------------- recordings


def real_clip() -> list[np.ndarray]:
    """The frames of the Pexels clip as YUV 4:2:0 planes (what the encoder takes; half the memory of RGB)."""
    with av.open(str(REAL_VIDEO)) as container:
        stream = container.streams.video[0]
        frames = [frame.reformat(width=WIDTH, height=HEIGHT, format="yuv420p").to_ndarray()
                  for frame in container.decode(stream)]
    return frames


def synthetic_clip(folder: Path) -> list[np.ndarray]:
    """A synthetic long video's frames, enlarged twice and placed in the middle of a 640x360 canvas."""
    config = LongVideoConfig(subjects=1, duration_s=SYNTHETIC_CLIP_S, size=SYNTHETIC_FACE, micro_per_minute=6,
                             macro_per_minute=9, write_frame_folders=False, write_mp4=True)
    video = write_long_videos(folder / "synthetic", config).video_files[0]
    side = 2 * SYNTHETIC_FACE
    top, left = (HEIGHT - side) // 2, (WIDTH - side) // 2
    frames = []
    with av.open(str(video)) as container:
        for frame in container.decode(container.streams.video[0]):
            face = cv2.resize(frame.to_ndarray(format="rgb24"), (side, side), interpolation=cv2.INTER_CUBIC)
            canvas = cv2.copyMakeBorder(face, top, HEIGHT - side - top, left, WIDTH - side - left,
                                        cv2.BORDER_REPLICATE)
            frames.append(av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p").to_ndarray())
    return frames


def ping_pong(length: int, count: int) -> Iterator[int]:
    """Indices 0 .. length-1, back to 1, forward again ..., ``count`` of them (no jump between neighbours)."""
    period = max(1, 2 * length - 2)
    for i in range(count):
        j = i % period
        yield j if j < length else period - j


def write_recording(clip: list[np.ndarray], seconds: float, path: Path) -> dict[str, Any]:
    """Encode ``seconds`` of the clip played back and forth as a 30 fps H.264 file."""
    count = round(seconds * FPS)
    started = time.perf_counter()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}
        for pts, index in enumerate(ping_pong(len(clip), count)):
            frame = av.VideoFrame.from_ndarray(clip[index], format="yuv420p")
            frame.pts, frame.time_base = pts, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return {"path": path.name, "frames": count, "seconds": round(count / FPS, 2), "mb": round(
        path.stat().st_size / 2**20, 1), "encode_s": round(time.perf_counter() - started, 1)}


# ------------------------------------------------------------------------------------------------- timing


@dataclass
class Timed:
    """Wall and CPU seconds of one stage over ``frames`` recording frames."""

    stage: str
    spotter: str
    frames: int
    wall_s: float
    cpu_s: float

    def row(self) -> dict[str, Any]:
        fps = self.frames / self.wall_s
        return {"stage": self.stage, "spotter": self.spotter, "frames": self.frames, "wall_s": round(self.wall_s, 2),
                "cpu_s": round(self.cpu_s, 2), "frames_per_s": round(fps, 1),
                "frames_per_cpu_s": round(self.frames / max(self.cpu_s, 1e-9), 1),
                "ms_per_frame": round(1000 * self.wall_s / self.frames, 2),
                "real_time_factor": round(fps / FPS, 2)}


def timed(stage: str, spotter: str, frames: int | None, work: Callable[[], Any]) -> tuple[Timed, Any]:
    """Run ``work`` once; ``frames`` None takes the frame count from its result (a number)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    count = frames if frames is not None else int(result)
    return Timed(stage, spotter, count, wall, cpu), result


def decode_only(path: Path) -> int:
    """Decode every frame to an RGB array, as the tracker's source does; returns the frame count."""
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            count += 1
    return count


@dataclass
class Crops:
    """The aligned crops of a tracked recording, on disk (a memory map), ``None`` where there was no face."""

    array: np.ndarray
    has_face: np.ndarray
    fps: float

    def stream(self, limit: int | None = None) -> Iterator[np.ndarray | None]:
        for index in range(len(self.array) if limit is None else min(limit, len(self.array))):
            yield np.array(self.array[index]) if self.has_face[index] else None


def track_to_disk(path: Path, track: FaceTrackConfig, folder: Path, frames: int) -> tuple[Crops, dict[str, Any]]:
    """Decode and track, writing each crop into a memory map; returns the crops and the tracking summary."""
    array = np.lib.format.open_memmap(folder / "crops.npy", mode="w+", dtype=np.uint8,
                                      shape=(frames, track.size, track.size, 3))
    has_face = np.zeros(frames, dtype=bool)
    tracked = track_face(path, track)
    for frame in tracked:
        if frame.crop is not None:
            array[frame.index] = frame.crop
            has_face[frame.index] = True
    summary = tracked.summary
    if summary.frames != frames:
        raise ValueError(f"{path}: {summary.frames} frames tracked, {frames} expected")
    details = {"face_frames": summary.face_frames, "faceless_frames": summary.faceless_frames,
               "shots": len(summary.shots), "detections": dict(summary.detections),
               "detection_s": {k: round(v, 2) for k, v in summary.detection_seconds.items()},
               "alignment_updates": len(summary.alignment_updates)}
    return Crops(array, has_face, summary.fps), details


def build_spotter(name: str) -> Spotter:
    """The spotter, its μ-BERT model built now (so that model building is not timed)."""
    if SPOTTER_MODELS[name] is None:
        return get_spotter(name)
    config = MicronBertSpotterConfig(model=ModelInitConfig(name=SPOTTER_MODELS[name]))
    spotter = get_spotter("micronbert", config)
    spotter.model.eval()
    return spotter


def signal_only(spotter: Spotter, crops: Crops, limit: int | None) -> int:
    """Signal + peaks of the stored crops; returns the frame count."""
    frames = len(crops.array) if limit is None else min(limit, len(crops.array))
    spotter.trace(SpotVideo("crops", crops.fps, lambda: crops.stream(limit)))
    return frames


def speed(args: argparse.Namespace, clip: list[np.ndarray], folder: Path) -> dict[str, Any]:
    """Stages 1-4 (module docstring) on a recording of ``args.seconds``."""
    main = write_recording(clip, args.seconds, folder / "speed.mp4")
    path, frames = folder / main["path"], main["frames"]
    spotters = {name: build_spotter(name) for name in args.spotters}
    geometry = tracking_for(next(iter(spotters.values())), FaceTrackConfig())
    stage, _ = timed("decode", "-", None, lambda: decode_only(path))
    stages = [stage]
    stage, (crops, tracking) = timed("decode + track", "-", frames,
                                     lambda: track_to_disk(path, geometry, folder, frames))
    stages.append(stage)
    official = write_recording(clip, args.official_seconds, folder / "official.mp4")
    recordings = {"speed": main, "official-small": official}
    outputs: dict[str, float] = {}
    for name, spotter in spotters.items():
        limit = official["frames"] if name == "micronbert-official-small" else None
        stage, _ = timed("signal + peaks (stored crops)", name, None,
                         functools.partial(signal_only, spotter, crops, limit))
        stages.append(stage)
        recording = folder / (official["path"] if limit is not None else main["path"])
        count = frames if limit is None else official["frames"]
        stage, result = timed("end to end (spot_recording)", name, count,
                              functools.partial(spot_recording, recording, spotter))
        stages.append(stage)
        apexes = (result.intervals.nlargest(MAX_THUMBNAILS, "score")["apex"] - FIRST_FRAME).tolist()
        stage, _ = timed("of which thumbnails (crops_at)", name, count,
                         functools.partial(crops_at, recording, result.summary, apexes))
        stages.append(stage)
        started = time.perf_counter()
        write_recording_spot(result, folder / f"out-{name}")
        outputs[name] = round(time.perf_counter() - started, 2)
    return {"recordings": recordings, "stages": [s.row() for s in stages], "tracking": tracking,
            "write_outputs_s": outputs}


# ------------------------------------------------------------------------------------------------- memory


def proc_status_mb(key: str) -> float:
    """A memory figure of this process from /proc/self/status, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def memory_child(path: Path, threads: int) -> None:
    """End-to-end flow-roi spotting of ``path`` in this (fresh) process; prints its memory as JSON."""
    set_threads(threads)
    spotter = build_spotter("flow-roi")
    start = proc_status_mb("VmRSS")
    wall = time.perf_counter()
    result = spot_recording(path, spotter)
    wall = time.perf_counter() - wall
    print(json.dumps({"frames": result.summary.frames, "rss_start_mb": start, "rss_end_mb": proc_status_mb("VmRSS"),
                      "peak_rss_mb": proc_status_mb("VmHWM"),
                      "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "wall_s": round(wall, 1), "frames_per_s": round(result.summary.frames / wall, 1),
                      "intervals": len(result.intervals)}))


def memory_run(path: Path, threads: int) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-child", str(path), "--threads", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(output.strip().splitlines()[-1])


def memory(args: argparse.Namespace, clip: list[np.ndarray], folder: Path) -> dict[str, Any]:
    rows = []
    for minutes in (args.short_minutes, args.long_minutes):
        recording = write_recording(clip, 60 * minutes, folder / f"memory-{minutes:g}min.mp4")
        measured = memory_run(folder / recording["path"], args.threads)
        rows.append({"minutes": minutes, "encode_s": recording["encode_s"], **measured})
        (folder / recording["path"]).unlink()
    difference = round(rows[1]["peak_rss_mb"] - rows[0]["peak_rss_mb"], 1)
    return {"rows": rows, "peak_difference_mb": difference,
            "peak_difference_share": round(difference / rows[0]["peak_rss_mb"], 4)}


# ------------------------------------------------------------------------------------------------- report


def load() -> dict[str, Any]:
    """Load average and the busiest processes other than this one and its children."""
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    listing = subprocess.run(["ps", "-eo", "pid,ppid,pcpu,etime,args", "--sort=-pcpu"], capture_output=True,
                             text=True, check=False).stdout.splitlines()[1:]
    mine = {os.getpid()}
    others = []
    for line in listing:
        pid, ppid, pcpu, etime, command = line.split(None, 4)
        if int(pid) in mine or int(ppid) in mine or command.startswith("ps "):
            continue
        others.append({"pid": int(pid), "cpu_percent": float(pcpu), "elapsed": etime, "command": command[:120]})
    return {"time": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "uptime": uptime,
            "load_average_1_5_15min": [round(v, 2) for v in os.getloadavg()], "busiest": others[:TOP_PROCESSES]}


def verdict(stages: list[dict[str, Any]]) -> str:
    rows = [row for row in stages if row["stage"].startswith("end to end") and row["spotter"] == "flow-roi"]
    if not rows:
        return "flow-roi not run"
    fps = rows[0]["frames_per_s"]
    return f"flow-roi end to end {fps} frames/s: target >= {TARGET_FPS:g} {'met' if fps >= TARGET_FPS else 'MISSED'}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    set_threads(args.threads)
    load_before = load()
    with tempfile.TemporaryDirectory(prefix="bench_spot_") as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        clip = real_clip() if args.source == "real" else synthetic_clip(folder)
        clip_s = round(time.perf_counter() - started, 1)
        speed_result = speed(args, clip, folder)
        memory_result = memory(args, clip, folder)
    return {"benchmark": "spot", "machine": {**common.machine_info(), "cv2_threads": cv2.getNumThreads(),
                                             "opencv": cv2.__version__, "pyav": av.__version__},
            "command": " ".join(["python", "benchmarks/bench_spot.py", *map(shlex.quote, sys.argv[1:])]),
            "options": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
                        if key != "memory_child"},
            "source": {"kind": args.source, "clip_frames": len(clip), "clip_build_s": clip_s,
                       "video": f"{WIDTH}x{HEIGHT} H.264 (libx264 veryfast, crf 20), {FPS} fps, played forward and "
                                "backward"},
            "load_before": load_before, "load_after": load(), **speed_result, "memory": memory_result,
            "verdict": verdict(speed_result["stages"])}


def _load_line(snapshot: dict[str, Any]) -> str:
    busy = "; ".join(f"{p['cpu_percent']}% `{p['command'][:70]}`" for p in snapshot["busiest"] if p["cpu_percent"] >= 5)
    return f"`{snapshot['uptime']}`; other processes over 5 % CPU (ps: averaged over each one's life): {busy or 'none'}"


def markdown(result: dict[str, Any]) -> str:
    machine, memory_result = result["machine"], result["memory"]
    recordings = "; ".join(f"{name}: {r['frames']} frames ({r['seconds']} s, {r['mb']} MB)"
                           for name, r in result["recordings"].items())
    lines = [
        f"# Spotting in raw recordings ({machine['date']})", "",
        f"Command: `{result['command']}`", "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, shared with other jobs; torch {machine['torch']} with "
        f"{machine['torch_threads']} thread(s), OpenCV {machine['opencv']} with {machine['cv2_threads']} thread(s), "
        f"PyAV {machine['pyav']} (FFmpeg decoder threads automatic); Python {machine['python']}.", "",
        f"Load at the start: {_load_line(result['load_before'])}.", "",
        f"Load at the end: {_load_line(result['load_after'])}.", "",
        f"Recording: {result['source']['kind']} face, {result['source']['video']}; {recordings}. μ-BERT models "
        "(micronbert: tiny, 64 px; micronbert-official-small: 224 px) are randomly initialised (same speed).", "",
        f"**{result['verdict']}.**", "",
        "## Frames per second by stage", "",
        "frames/s = recording frames / wall seconds; real-time factor = frames/s / 30. CPU seconds well below wall "
        "seconds mean the process waited for a core (the machine is shared).", "",
        common.markdown_table(result["stages"], ["stage", "spotter", "frames", "wall_s", "cpu_s", "frames_per_s",
                                                 "frames_per_cpu_s", "ms_per_frame", "real_time_factor"]), "",
        "\"of which thumbnails\": `crops_at` alone, the part of the end-to-end run that reads the recording again up "
        "to the last apex of the best intervals for their faces. frames/CPU s: what one core would give alone "
        "(CPU seconds of all the process's threads, FFmpeg's decoder threads included).", "",
        f"Tracking: {json.dumps(result['tracking'])}.", "",
        f"Writing CSV, JSON and the timeline figure (`write_recording_spot`, not in the end-to-end time), seconds: "
        f"{json.dumps(result['write_outputs_s'])}.", "",
        "## Peak memory of end-to-end flow-roi (fresh process each)", "",
        "RSS after the imports and the spotter, at the end, and the peak (VmRSS, VmHWM of /proc/self/status). "
        "`ru_maxrss` is shown to explain why it is not used: it survives `exec` and reports the parent's peak when "
        "that is higher.", "",
        common.markdown_table(memory_result["rows"], ["minutes", "frames", "rss_start_mb", "rss_end_mb",
                                                      "peak_rss_mb", "ru_maxrss_mb", "wall_s", "frames_per_s",
                                                      "intervals"]), "",
        f"Peak difference, longer minus shorter: {memory_result['peak_difference_mb']} MiB "
        f"({100 * memory_result['peak_difference_share']:.1f} % of the shorter run's peak).", "",
    ]
    return "\n".join(lines)


def write(result: dict[str, Any], out: Path, quick: bool) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bench_spot{'_quick' if quick else ''}_cpu_{dt.date.today().isoformat()}"
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    write_json_atomically(json_path, result)
    write_text_atomically(md_path, markdown(result))
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child is not None:
        memory_child(args.memory_child, args.threads)
        return 0
    result = run(args)
    paths = write(result, args.out, args.quick)
    sys.stdout.write(markdown(result) + f"\nwritten: {', '.join(map(str, paths))}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
