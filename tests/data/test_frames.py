from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from micronbert.data.frames import (
    frame_number,
    frame_numbers,
    frame_path,
    list_frames,
    read_frame,
    read_grey,
    sort_frames,
)


@pytest.mark.parametrize(
    ("name", "number"),
    [("img46.jpg", 46), ("reg_img046.jpg", 46), ("006_05562.jpg", 5562), ("009_3577.jpg", 3577),
     ("image000101.bmp", 101), ("355.jpg", 355), ("img001.jpg", 1)],
)
def test_frame_number_is_the_trailing_integer(name: str, number: int) -> None:
    assert frame_number(Path("/x") / name) == number


def test_frame_number_without_digits_names_the_file() -> None:
    with pytest.raises(ValueError, match="thumb.jpg"):
        frame_number("clips/thumb.jpg")


def _touch_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        cv2.imwrite(str(folder / name), np.zeros((4, 4, 3), np.uint8))


def test_list_frames_sorts_numerically_not_lexically(tmp_path: Path) -> None:
    _touch_images(tmp_path, ["img100.jpg", "img46.jpg", "img9.jpg", "img1000.jpg", "thumb.jpg"])
    (tmp_path / "notes7.txt").write_text("not a frame")
    frames = list_frames(tmp_path)
    assert [p.name for p in frames] == ["img9.jpg", "img46.jpg", "img100.jpg", "img1000.jpg"]
    assert frame_numbers(frames) == [9, 46, 100, 1000]


def test_list_frames_rejects_two_files_with_one_number(tmp_path: Path) -> None:
    _touch_images(tmp_path, ["img1.jpg", "img01.jpg"])
    with pytest.raises(ValueError, match="share frame number 1"):
        list_frames(tmp_path)


def test_list_frames_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_frames(tmp_path / "nowhere")


def test_sort_frames_mixed_padding() -> None:
    assert [p.name for p in sort_frames(["009_3577.jpg", "009_03576.jpg"])] == ["009_03576.jpg", "009_3577.jpg"]


def test_frame_path_finds_by_number_and_names_missing(tmp_path: Path) -> None:
    frames = [tmp_path / "img5.jpg", tmp_path / "img12.jpg"]
    assert frame_path(frames, 12) == frames[1]
    with pytest.raises(KeyError, match="frame 7"):
        frame_path(frames, 7)


def test_read_frame_returns_rgb(tmp_path: Path) -> None:
    bgr = np.zeros((6, 5, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red1.png"), bgr)
    image = read_frame(tmp_path / "red1.png")
    assert image.shape == (6, 5, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [255, 0, 0]


def test_read_frame_replicates_grey(tmp_path: Path) -> None:
    grey = np.arange(30, dtype=np.uint8).reshape(5, 6)
    cv2.imwrite(str(tmp_path / "g1.png"), grey)
    image = read_frame(tmp_path / "g1.png")
    assert image.shape == (5, 6, 3)
    assert all(np.array_equal(image[..., c], grey) for c in range(3))
    assert np.array_equal(read_grey(tmp_path / "g1.png"), grey)


def test_read_frame_drops_alpha_and_scales_16_bit(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a1.png"), np.full((3, 3, 4), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "d1.png"), np.full((3, 3), 0x8000, np.uint16))
    assert read_frame(tmp_path / "a1.png").shape == (3, 3, 3)
    deep = read_frame(tmp_path / "d1.png")
    assert deep.dtype == np.uint8 and int(deep[0, 0, 0]) == 0x80


def test_read_frame_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "empty1.jpg").write_bytes(b"")
    (tmp_path / "junk1.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match=r"empty \(0 bytes\).*empty1.jpg"):
        read_frame(tmp_path / "empty1.jpg")
    with pytest.raises(ValueError, match="cannot be decoded.*junk1.jpg"):
        read_frame(tmp_path / "junk1.jpg")
    with pytest.raises(FileNotFoundError, match="gone1.jpg"):
        read_frame(tmp_path / "gone1.jpg")
