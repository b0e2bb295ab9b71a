"""Long videos as spotters read them: frame-folder layouts of CAS(ME)^2, SAMM-LV and CAS(ME)^3 (fixture trees of
empty files), and the face-crop streams of dataset_videos (small textured frames, a face backend that always finds
the same face)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from micronbert.data.faces import FaceTrackConfig
from micronbert.data.faces.backends import FaceDetection
from micronbert.spotting.videos import CropMemory, FolderFrames, dataset_videos, video_folders

SIDE = 64
FACE = FaceDetection(box=(8.0, 8.0, 48.0, 48.0), left_eye=(22.0, 26.0), right_eye=(42.0, 26.0))
TRACK = FaceTrackConfig(size=32, search_side=64)


@dataclass
class CountingFace:
    """A face backend that finds ``FACE`` (or nothing) in every image and counts its calls."""

    found: bool = True
    name: str = "counting"
    calls: list[int] = field(default_factory=list)

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        self.calls.append(1)
        return [FACE] if self.found else []


def touch_frames(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def write_frames(folder: Path, numbers: list[int], pattern: str = "img{:03d}.png") -> Path:
    """Small textured PNG frames (lossless, so that every pass reads the same pixels)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur((rng.random((SIDE, SIDE, 3)) * 255).astype(np.uint8), (0, 0), 1.5)
    for number in numbers:
        cv2.imwrite(str(folder / pattern.format(number)), np.roll(texture, number % 3, axis=1))
    return folder


# --- folders -----------------------------------------------------------------------------------------------------


def test_casme_sq_folders_are_named_by_subject_folder_and_stimulus_code(tmp_path):
    rawpic = tmp_path / "CASME_sq" / "rawpic"
    first = touch_frames(rawpic / "s15" / "15_0101disgustingteeth", ["img001.jpg", "img002.jpg", "img010.jpg"])
    moved = touch_frames(rawpic / "s19" / "23_0502funnyerrors", ["img001.jpg"])
    touch_frames(rawpic / "s16" / "16_0102eatingworms", ["notes.txt"])  # no frames: not a video
    touch_frames(tmp_path / "CASME_sq" / ".hidden" / "s20" / "20_0401girlcrashing", ["img001.jpg"])

    assert video_folders("casme_sq", tmp_path) == {"s15_0101": first, "s19_0502": moved}


def test_samm_lv_and_casme3_folders(tmp_path):
    samm = tmp_path / "samm" / "SAMM_longvideos"
    one = touch_frames(samm / "006_1", ["006_1_0001.jpg", "006_1_0002.jpg"])
    other = touch_frames(samm / "037_7", ["037_7_0001.jpg"])
    assert video_folders("samm_lv", tmp_path / "samm") == {"006_1": one, "037_7": other}

    part_a = tmp_path / "casme3" / "part_A"
    colour = touch_frames(part_a / "spNO.1" / "a" / "color", ["1.jpg", "2.jpg"])
    touch_frames(part_a / "spNO.1" / "a" / "depth", ["1.png"])
    upper = touch_frames(part_a / "spNo.14" / "J" / "color", ["7.jpg"])
    assert video_folders("casme3", tmp_path / "casme3") == {"spNO.14_j": upper, "spNO.1_a": colour}


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        video_folders("casme_sq", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=r"no frame folders laid out as rawpic/s15/15_0101"):
        video_folders("casme_sq", tmp_path)
    with pytest.raises(ValueError, match="unknown spotting dataset"):
        video_folders("casme9", tmp_path)
    with pytest.raises(ValueError, match="casme3c: no frame-folder layout"):
        video_folders("casme3c", tmp_path)
    touch_frames(tmp_path / "a" / "SAMM_longvideos" / "006_1", ["006_1_0001.jpg"])
    touch_frames(tmp_path / "b" / "SAMM_longvideos" / "006_1", ["006_1_0001.jpg"])
    with pytest.raises(ValueError, match="two frame folders are video 006_1"):
        video_folders("samm_lv", tmp_path)


def test_folders_deeper_than_the_search_are_not_found(tmp_path):
    deep = tmp_path.joinpath(*"abcdefg")
    touch_frames(deep / "SAMM_longvideos" / "006_1", ["006_1_0001.jpg"])
    with pytest.raises(FileNotFoundError, match="within 6 levels"):
        video_folders("samm_lv", tmp_path)
    assert list(video_folders("samm_lv", deep)) == ["006_1"]


# --- streams -----------------------------------------------------------------------------------------------------


def test_dataset_videos_take_fps_subject_and_first_frame_from_the_dataset(tmp_path):
    write_frames(tmp_path / "rawpic" / "s15" / "15_0101teeth", list(range(3, 9)))
    write_frames(tmp_path / "rawpic" / "s16" / "16_0102worms", list(range(1, 5)))
    truth = pd.DataFrame({"video": ["s15_0101"], "subject": ["person-a"]})

    videos = dataset_videos("casme_sq", tmp_path, TRACK, truth, backend=CountingFace())

    assert [(v.video, v.fps, v.subject, v.first_frame) for v in videos] == [
        ("s15_0101", 30.0, "person-a", 3), ("s16_0102", 30.0, "s16", 1)]
    crops = list(videos[0].stream())
    assert len(crops) == 6 and all(c is not None and c.shape == (32, 32, 3) for c in crops)
    assert videos[0].frames.facts()["faceless"] == 0 and videos[0].frames.facts()["tracked"] == 6


def test_missing_frame_numbers_are_frames_without_a_face(tmp_path):
    folder = write_frames(tmp_path / "SAMM_longvideos" / "006_1", [1, 2, 3, 6, 7], "006_1_{:04d}.png")
    video = dataset_videos("samm_lv", tmp_path, TRACK, backend=CountingFace())[0]

    crops = list(video.stream())

    assert video.fps == 200.0 and video.first_frame == 1
    assert [crop is None for crop in crops] == [False, False, False, True, True, False, False]
    facts = video.frames.facts()
    assert facts["missing_numbers"] == 2 and facts["frames"] == 7 and facts["folder"] == str(folder)


def test_keep_every_reads_and_tracks_only_the_kept_positions(tmp_path):
    write_frames(tmp_path / "SAMM_longvideos" / "006_1", list(range(1, 11)), "006_1_{:04d}.png")
    video = dataset_videos("samm_lv", tmp_path, TRACK, keep_every=3, backend=CountingFace())[0]

    crops = list(video.stream())

    assert [i for i, crop in enumerate(crops) if crop is not None] == [0, 3, 6, 9]
    assert video.frames.numbers_read() == [1, 4, 7, 10]
    assert video.frames.track.fps == pytest.approx(200 / 3)


def test_crops_in_memory_are_read_again_without_tracking(tmp_path):
    folder = write_frames(tmp_path / "frames", list(range(1, 9)))
    backend = CountingFace()
    remembered = FolderFrames("v", folder, 30.0, TRACK, memory=CropMemory(1.0), backend=backend)
    first = list(remembered())
    calls = len(backend.calls)
    second = list(remembered())
    assert calls > 0 and len(backend.calls) == calls
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))

    forgetful = FolderFrames("v", folder, 30.0, TRACK, memory=CropMemory(0), backend=backend)
    list(forgetful())
    calls = len(backend.calls)
    list(forgetful())
    assert len(backend.calls) > calls


def test_a_video_without_a_face_streams_none_and_says_so(tmp_path):
    folder = write_frames(tmp_path / "frames", list(range(1, 6)))
    frames = FolderFrames("v", folder, 30.0, TRACK, backend=CountingFace(found=False))

    assert list(frames()) == [None] * 5
    assert frames.facts()["faceless"] == 5 == frames.facts()["tracked"]


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="holds no frames"):
        FolderFrames("v", touch_frames(tmp_path / "empty", ["notes.txt"]), 30.0, TRACK)
    with pytest.raises(ValueError, match="keep_every must be a positive integer"):
        FolderFrames("v", write_frames(tmp_path / "f", [1]), 30.0, TRACK, keep_every=0)
    with pytest.raises(ValueError, match="budget_mb"):
        CropMemory(-1)
