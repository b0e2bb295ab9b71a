"""The crop cache: manifest, resumability, failures reported per clip, parallel workers."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from micronbert.data.faces import AlignConfig, align_clip
from micronbert.data.faces.crop_cache import (
    Clip,
    CropConfig,
    cache_root,
    clip_directory_name,
    prepare_crops,
    read_cache_manifest,
)
from micronbert.data.frames import read_frame

SETTINGS = CropConfig(align=AlignConfig(output_size=64))


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    image = cv2.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return cv2.resize(image, (256, 300), interpolation=cv2.INTER_AREA)


def _astronaut() -> np.ndarray:
    import skimage.data

    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)[:256, 96:352]


def _write_clip(folder: Path, image: np.ndarray, n_frames: int) -> list[Path]:
    """Frames that move 2 px right and 1 px down per frame."""
    folder.mkdir(parents=True)
    paths = []
    for k in range(n_frames):
        frame = np.roll(image, (k, 2 * k), axis=(0, 1))
        path = folder / f"img{k + 1}.png"
        cv2.imwrite(str(path), frame)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("frames")
    clips = {
        "sub01/EP01": _write_clip(root / "sub01" / "EP01", _grace_hopper(), 4),
        "sub02/EP02 (astronaut)": _write_clip(root / "sub02" / "EP02", _astronaut(), 3),
    }
    blank = _write_clip(root / "sub03" / "EP03", np.full((240, 320, 3), 100, np.uint8), 2)
    clips["sub03/EP03"] = blank
    corrupt = _write_clip(root / "sub04" / "EP04", _grace_hopper(), 3)
    corrupt[1].write_bytes(b"not an image")
    clips["sub04/EP04"] = corrupt
    return clips


def test_crops_are_written_with_a_manifest_and_failures_are_reported(dataset, tmp_path):
    report = prepare_crops(dataset, tmp_path / "cache", SETTINGS, progress=False)

    status = {c.clip_id: c.status for c in report.clips}
    assert status == {"sub01/EP01": "prepared", "sub02/EP02 (astronaut)": "prepared",
                      "sub03/EP03": "failed", "sub04/EP04": "failed"}
    failures = {c.clip_id: c.error for c in report.failed}
    assert "no face found" in failures["sub03/EP03"] and "img1.png" in failures["sub03/EP03"]
    assert "cannot be decoded" in failures["sub04/EP04"] and "img2.png" in failures["sub04/EP04"]

    good = report.prepared[0]
    assert good.n_frames == 4 and report.frames_written == 7
    for path in good.crop_paths:
        assert cv2.imread(str(path)).shape == (64, 64, 3)

    manifest = read_cache_manifest(tmp_path / "cache", SETTINGS)
    assert manifest["settings_digest"] == SETTINGS.digest()
    assert manifest["failed"] == ["sub03/EP03", "sub04/EP04"]
    entry = manifest["clips"]["sub01/EP01"]
    source = dataset["sub01/EP01"][0]
    assert entry["sources"][0] == {"path": str(source.resolve()), "size": source.stat().st_size,
                                   "mtime_ns": source.stat().st_mtime_ns}
    assert entry["crops"] == [f"{p.stem}.png" for p in dataset["sub01/EP01"]]  # frame numbers kept
    assert "img2.png" in manifest["clips"]["sub04/EP04"]["error"]
    leftovers = [p for p in report.cache_root.rglob(".*") if p.is_file()]
    assert leftovers == []


def test_cached_crops_match_align_clip_and_are_reused(dataset, tmp_path):
    clips = {k: v for k, v in dataset.items() if k in ("sub01/EP01", "sub02/EP02 (astronaut)")}
    first = prepare_crops(clips, tmp_path, SETTINGS, progress=False)
    written = {p: p.stat().st_mtime_ns for c in first.clips for p in c.crop_paths}

    second = prepare_crops(clips, tmp_path, SETTINGS, progress=False)

    assert [c.status for c in second.clips] == ["cached", "cached"]
    assert {p: p.stat().st_mtime_ns for c in second.clips for p in c.crop_paths} == written
    expected = align_clip(clips["sub01/EP01"], SETTINGS.align).crops
    cached = [read_frame(p) for p in second.clips[0].crop_paths]
    for want, got in zip(expected, cached):
        np.testing.assert_array_equal(got, want)


def test_changed_source_or_interrupted_clip_is_redone_alone(dataset, tmp_path):
    clips = {k: v for k, v in dataset.items() if k in ("sub01/EP01", "sub02/EP02 (astronaut)")}
    prepare_crops(clips, tmp_path, SETTINGS, progress=False)
    frame = clips["sub01/EP01"][2]
    stat = frame.stat()
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    after_touch = prepare_crops(clips, tmp_path, SETTINGS, progress=False)
    clip_dir = cache_root(tmp_path, SETTINGS) / "clips" / clip_directory_name("sub02/EP02 (astronaut)")
    (clip_dir / "clip.json").unlink()  # as if the run had stopped before finishing this clip
    after_interrupt = prepare_crops(clips, tmp_path, SETTINGS, progress=False)

    assert [c.status for c in after_touch.clips] == ["prepared", "cached"]
    assert [c.status for c in after_interrupt.clips] == ["cached", "prepared"]
    manifest = read_cache_manifest(tmp_path, SETTINGS)
    assert manifest["clips"]["sub01/EP01"]["sources"][2]["mtime_ns"] == frame.stat().st_mtime_ns


def test_settings_change_uses_another_cache_folder(dataset, tmp_path):
    clips = {"sub01/EP01": dataset["sub01/EP01"]}
    jpeg = CropConfig(align=AlignConfig(output_size=64), image_format="jpg", jpeg_quality=90)

    png_report = prepare_crops(clips, tmp_path, SETTINGS, progress=False)
    jpg_report = prepare_crops(clips, tmp_path, jpeg, progress=False)

    assert png_report.cache_root != jpg_report.cache_root
    assert jpg_report.clips[0].status == "prepared"
    assert all(p.suffix == ".jpg" for p in jpg_report.clips[0].crop_paths)
    assert json.loads((jpg_report.cache_root / "settings.json").read_text())["jpeg_quality"] == 90
    assert CropConfig(align=AlignConfig(output_size=65)).digest() != SETTINGS.digest()


def test_strict_mode_raises_naming_the_clip_and_file(dataset, tmp_path):
    clips = [Clip("sub03/EP03", tuple(dataset["sub03/EP03"]))]

    with pytest.raises(ValueError, match=r"sub03/EP03.*img1\.png"):
        prepare_crops(clips, tmp_path, SETTINGS, strict=True, progress=False)
    assert read_cache_manifest(tmp_path, SETTINGS)["failed"] == ["sub03/EP03"]


def test_two_workers_give_the_same_crops_as_one(dataset, tmp_path):
    clips = {k: v for k, v in dataset.items() if k != "sub03/EP03"}

    serial = prepare_crops(clips, tmp_path / "one", SETTINGS, workers=1, progress=False)
    parallel = prepare_crops(clips, tmp_path / "two", SETTINGS, workers=2, progress=False)

    assert [(c.clip_id, c.status) for c in parallel.clips] == [
        (c.clip_id, c.status) for c in serial.clips
    ]
    for one, two in zip(serial.prepared, parallel.prepared):
        assert [p.read_bytes() for p in one.crop_paths] == [p.read_bytes() for p in two.crop_paths]
    assert set(parallel.stage_seconds()) == {"setup", "read", "detect", "crop", "cache"}
    assert parallel.stage_seconds()["detect"] > 0


def test_onset_index_is_used_and_part_of_the_key(dataset, tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((300, 256, 3), 100, np.uint8))
    face_then_blank = (dataset["sub01/EP01"][0], blank)

    blank_onset = prepare_crops([Clip("c", face_then_blank, onset_index=1)], tmp_path, SETTINGS,
                                progress=False)
    face_onset = prepare_crops([Clip("c", face_then_blank, onset_index=0)], tmp_path, SETTINGS,
                               progress=False)

    assert blank_onset.clips[0].status == "failed"
    assert "no face found" in blank_onset.clips[0].error
    assert face_onset.clips[0].status == "prepared"
    assert read_cache_manifest(tmp_path, SETTINGS)["clips"]["c"]["onset_index"] == 0


@pytest.mark.parametrize(
    ("clips", "kwargs", "message"),
    [
        ([Clip("a", ("x.png",)), Clip("a", ("y.png",))], {}, "duplicate clip_id 'a'"),
        ({"a": ["x.png"]}, {"workers": 0}, "workers"),
        (["x.png"], {}, "expected Clip objects"),
    ],
)
def test_invalid_inputs_are_rejected(tmp_path, clips, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare_crops(clips, tmp_path, SETTINGS, progress=False, **kwargs)


def test_invalid_clips_and_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="onset_index 3"):
        Clip("a", ("x.png",), onset_index=3)
    with pytest.raises(ValueError, match="no frames"):
        Clip("a", ())
    with pytest.raises(ValueError, match="jpeg_quality"):
        CropConfig(image_format="jpg", jpeg_quality=0)
    with pytest.raises(ValueError, match="image_format"):
        CropConfig(image_format="bmp")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="run prepare_crops first"):
        read_cache_manifest(tmp_path, SETTINGS)


def test_missing_frame_is_reported(tmp_path, dataset):
    clips = [Clip("gone", (tmp_path / "missing.png",))]

    report = prepare_crops(clips, tmp_path / "cache", SETTINGS, progress=False)

    assert report.clips[0].status == "failed"
    assert "missing.png" in report.clips[0].error
