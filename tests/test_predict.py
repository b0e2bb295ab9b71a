"""Prediction: pairs, clips (folder and video) with the automatic apex, batch mode, pictures and the CLI."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from micronbert.cli import main
from micronbert.data.datasets import get_scheme, load
from micronbert.data.synthetic import SynthConfig, write_synthetic_dataset
from micronbert.data.synthetic.writers import video_codec
from micronbert.data.transforms import to_model_input
from micronbert.evaluation.runner import finetune
from micronbert.model import change_map, create_model
from micronbert.predict import (
    Predictor,
    apex_scores,
    clips_in,
    load_predictor,
    predict_batch,
    predict_clip,
    predict_pair,
    read_clip,
    read_clip_faces,
)
from tests.recognition_fixtures import SCHEME, recognition_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finetune output folder and the synthetic CASME II-like tree it was trained on."""
    root = tmp_path_factory.mktemp("predict")
    dataset = write_synthetic_dataset(root / "data", SynthConfig(subjects=2, clips_per_subject=3, size=64,
                                                                 unlabeled_videos=0, write_mp4=False,
                                                                 duration_s=(0.05, 0.1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = load("casme2", dataset.casme2_root, scheme=SCHEME)
    config = recognition_config({"train.epochs": 1, "cache.dir": str(root / "cache")})
    out = finetune(table, config, root / "model", list(get_scheme(SCHEME).classes), log=lambda message: None)
    return out, dataset.casme2_root / "Cropped"


def _clip_folders(frames_root: Path) -> list[Path]:
    return sorted(p for p in frames_root.glob("sub*/*") if p.is_dir())


def test_pair_gives_probabilities_and_a_picture(trained: tuple[Path, Path], tmp_path: Path) -> None:
    predictor = load_predictor(trained[0])
    assert predictor.class_names == list(get_scheme(SCHEME).classes)
    frames = sorted(_clip_folders(trained[1])[0].iterdir())
    result = predict_pair(predictor, frames[0], frames[-1], tmp_path)
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.predicted == max(result.probabilities, key=result.probabilities.get)
    assert not result.apex_searched and Path(result.figure).stat().st_size > 0
    small = tmp_path / "small_1.jpg"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(frames[-1])), (40, 40)))
    with pytest.raises(ValueError, match="small_1.jpg.*differ in size"):
        predict_pair(predictor, frames[0], small)


def test_pair_maps_are_the_models_and_a_still_pair_shows_no_relative_change(trained: tuple[Path, Path]) -> None:
    predictor = load_predictor(trained[0])
    frames, _ = read_clip(_clip_folders(trained[1])[0])
    maps = predictor.pair(frames[0], frames[-1])
    with torch.no_grad():
        out = predictor.model.recognize(onset=to_model_input(frames[0]), apex=to_model_input(frames[-1]))
    np.testing.assert_allclose(maps["probabilities"], torch.softmax(out["logits"], 1)[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(maps["change"], change_map(out["dma_map"])[0].numpy(), atol=1e-6)
    assert {key: value.shape for key, value in maps.items()} == {
        "probabilities": (len(predictor.class_names),), "change": (64,), "relative_change": (64,), "saliency": (64,)}
    assert maps["relative_change"].max() > 0
    assert predictor.pair(frames[0], frames[0])["relative_change"].max() < 1e-6


def test_a_model_with_a_volatility_head_also_gives_and_draws_the_surprise_map(tmp_path: Path) -> None:
    torch.manual_seed(0)
    predictor = Predictor(create_model("tiny", volatility_weight=1.0, num_classes=3), ["a", "b", "c"])
    rng = np.random.default_rng(0)
    onset = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    apex = onset.copy()
    apex[:16] = 255 - apex[:16]
    maps = predictor.pair(onset, apex)
    with torch.no_grad():
        apex_tokens, onset_tokens = (predictor.model.encode(to_model_input(frame)) for frame in (apex, onset))
        expected = predictor.model.surprise(apex_tokens=apex_tokens, onset_tokens=onset_tokens)[0].numpy()
    np.testing.assert_allclose(maps["surprise"], expected, rtol=1e-5, atol=1e-7)
    onset_path, apex_path = tmp_path / "onset.png", tmp_path / "apex.png"
    cv2.imwrite(str(onset_path), onset[..., ::-1])
    cv2.imwrite(str(apex_path), apex[..., ::-1])
    result = predict_pair(predictor, onset_path, apex_path, tmp_path / "out")
    assert Path(result.figure).stat().st_size > 0


def test_clip_apex_is_the_frame_of_largest_relative_dma_change(trained: tuple[Path, Path]) -> None:
    predictor = load_predictor(trained[0])
    clip = _clip_folders(trained[1])[1]
    result = predict_clip(predictor, clip, face="none")
    frames, names = read_clip(clip)
    model = predictor.model
    with torch.no_grad():
        onset = model.encode(to_model_input(np.stack([frames[0]] * (len(frames) - 1))))
        others = model.encode(to_model_input(np.stack(frames[1:])))
        self_diagonal = model.dma(onset, onset)[1]
        change = (1.0 - model.dma(others, onset)[1] / self_diagonal).clamp_min(0).mean(dim=(1, 2))
    assert apex_scores(model, frames)[0] == pytest.approx(0.0, abs=1e-6)  # the onset against itself
    expected = int(torch.argmax(change)) + 1
    assert result.apex_searched and result.apex_frame == names[expected] and result.onset_frame == names[0]
    assert result.apex_score == pytest.approx(float(change[expected - 1]), abs=1e-5)


def _write_video(frames: list[np.ndarray], path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(video_codec(), rate=25)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def test_batch_over_folders_and_videos_reports_failures(trained: tuple[Path, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    clip = _clip_folders(trained[1])[0]
    frames, _ = read_clip(clip)
    _write_video(frames, batch / "b_video.mp4")
    (batch / "a_frames").symlink_to(clip, target_is_directory=True)
    lonely = batch / "c_single"
    lonely.mkdir()
    cv2.imwrite(str(lonely / "img1.jpg"), frames[0][..., ::-1])
    assert [p.name for p in clips_in(batch)] == ["a_frames", "b_video.mp4", "c_single"]
    predictor = load_predictor(trained[0])
    results, failed = predict_batch(predictor, batch, tmp_path / "pictures", progress=False)
    assert [r.name for r in results] == ["a_frames", "b_video.mp4"]
    assert results[1].apex_frame.startswith(str(batch / "b_video.mp4#"))
    assert len(failed) == 1 and "c_single" in failed[0][1] and "at least two frames" in failed[0][1]
    assert len(list((tmp_path / "pictures").glob("*.png"))) == 2

    assert main(["predict", "--model", str(trained[0]), "--batch", str(batch), "--json", "--no-pictures"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in document["predictions"]] == ["a_frames", "b_video.mp4"]
    assert document["failed"][0]["clip"].endswith("c_single")


def test_bad_clips_and_arguments_name_what_is_wrong(trained: tuple[Path, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    predictor = load_predictor(trained[0])
    with pytest.raises(FileNotFoundError, match="missing_clip"):
        read_clip(tmp_path / "missing_clip")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a clip")
    with pytest.raises(ValueError, match="notes.txt: not a frame folder or a video"):
        read_clip(notes)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="broken.mp4: cannot decode the video"):
        read_clip(broken)
    empty = tmp_path / "empty_clip"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty_clip: no numbered image files"):
        read_clip(empty)

    frames, _ = read_clip(_clip_folders(trained[1])[0])
    mixed = tmp_path / "mixed_clip"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "img1.png"), frames[0][..., ::-1])
    cv2.imwrite(str(mixed / "img2.png"), cv2.resize(frames[1][..., ::-1], (32, 32)))
    with pytest.raises(ValueError, match="mixed_clip: the clip's frames differ in size"):
        predict_clip(predictor, mixed, face="none")

    with pytest.raises(ValueError, match="2 class names for a head of 5 classes"):
        type(predictor)(predictor.model, ["a", "b"])
    with pytest.raises(FileNotFoundError, match="no_model"):
        load_predictor(tmp_path / "no_model")
    copied = tmp_path / "copied_model"
    shutil.copytree(trained[0], copied)
    for text in ['{"classes": ', '{"names": []}', '{"classes": "negative"}']:
        (copied / "classes.json").write_text(text)
        with pytest.raises(ValueError, match="classes.json: "):
            load_predictor(copied)

    for argv, message in [(["--clip", "x", "--batch", "y"], "exactly one of"),
                          ([], "exactly one of"),
                          (["--onset", "x.jpg"], "--onset and --apex go together")]:
        assert main(["predict", "--model", str(trained[0]), *argv]) == 2
        assert message in capsys.readouterr().err


def test_cli_prints_the_picked_apex_for_a_clip(trained: tuple[Path, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    clip = _clip_folders(trained[1])[1]
    assert main(["predict", "--model", str(trained[0]), "--clip", str(clip), "--out", str(tmp_path / "pictures")]) == 0
    printed = capsys.readouterr().out
    expected = predict_clip(load_predictor(trained[0]), clip)
    assert printed.startswith(f"{clip.name}: {expected.predicted}")
    assert f"apex found automatically: {expected.apex_frame}" in printed
    assert f"onset {expected.onset_frame}" in printed
    assert str(tmp_path / "pictures") in printed and len(list((tmp_path / "pictures").glob("*.png"))) == 1


def test_a_raw_clip_is_read_as_the_tracked_face(trained: tuple[Path, Path], tmp_path: Path, real_video: Path) -> None:
    predictor = load_predictor(trained[0])
    video = real_video / "single_face.mp4"

    result = predict_clip(predictor, video)

    crops, names, faceless = read_clip_faces(video, predictor.size)
    assert faceless == [] and result.faceless == [] and len(crops) == 72
    assert crops[0].shape == (predictor.size, predictor.size, 3)
    crop_folder = tmp_path / "crops"
    crop_folder.mkdir()
    for number, crop in enumerate(crops, start=1):
        cv2.imwrite(str(crop_folder / f"img{number:03d}.png"), crop[..., ::-1])
    as_crops = predict_clip(predictor, crop_folder, face="none")
    assert result.apex_frame == names[int(as_crops.apex_frame.split("img")[-1].split(".")[0]) - 1]
    np.testing.assert_allclose(list(result.probabilities.values()), list(as_crops.probabilities.values()), atol=1e-5)
    whole = predict_clip(predictor, video, face="none")
    assert whole.probabilities != result.probabilities  # the whole 640x360 frame is not what the model reads


def test_faceless_frames_of_a_raw_clip_are_reported_and_a_faceless_clip_refused(
        trained: tuple[Path, Path], capsys: pytest.CaptureFixture, real_video: Path) -> None:
    videos = real_video
    predictor = load_predictor(trained[0])

    result = predict_clip(predictor, videos / "face_noface.mov")

    assert result.faceless and result.faceless[-1]["offset"] == 169 and result.faceless[-1]["onset"] > 60
    apex_number = int(result.apex_frame.rsplit("#", 1)[1])
    assert not any(span["onset"] <= apex_number <= span["offset"] for span in result.faceless)
    with pytest.raises(ValueError, match="no face found in any of its 95 frames.*--face none"):
        predict_clip(predictor, videos / "no_face.mp4")
    assert main(["predict", "--model", str(trained[0]), "--clip", str(videos / "face_noface.mov"),
                 "--no-pictures"]) == 0
    assert "no face, left out: frames" in capsys.readouterr().out
