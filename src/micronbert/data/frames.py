"""Frame files: numbering, listing in temporal order and reading as RGB.

Every supported dataset names its frames with the frame index at the end of the file stem
(``img46.jpg``, ``006_05562.jpg``, ``image559740.bmp``, ``355.jpg``), with padding that varies
between datasets and even between clips. Frames are therefore ordered by that trailing integer,
never lexically (lexical order puts ``img100`` before ``img46``).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

_TRAILING_INT = re.compile(r"(\d+)$")


def frame_number(path: str | Path) -> int:
    """The integer at the end of the file stem (``reg_img046.jpg`` -> 46).

    Raises ValueError naming the file when the stem does not end in digits.
    """
    stem = Path(path).stem
    match = _TRAILING_INT.search(stem)
    if match is None:
        raise ValueError(f"frame file name has no trailing frame number: {path}")
    return int(match.group(1))


def is_frame_file(path: Path) -> bool:
    """True for a visible image file whose stem ends in digits."""
    return (
        path.suffix.lower() in IMAGE_EXTENSIONS
        and not path.name.startswith(".")
        and _TRAILING_INT.search(path.stem) is not None
    )


def sort_frames(paths: Iterable[str | Path]) -> list[Path]:
    """Paths sorted by their trailing frame number.

    Raises ValueError when two files carry the same number (``img1.jpg`` and ``img01.jpg``).
    """
    numbered: dict[int, Path] = {}
    for raw in paths:
        path = Path(raw)
        number = frame_number(path)
        if number in numbered:
            raise ValueError(
                f"two frame files share frame number {number}: {numbered[number]} and {path}"
            )
        numbered[number] = path
    return [numbered[number] for number in sorted(numbered)]


def list_frames(folder: str | Path) -> list[Path]:
    """Image files of ``folder`` whose stem ends in a number, sorted by that number.

    Files without a trailing number (thumbnails, notes) are ignored. Raises FileNotFoundError
    when the folder does not exist and NotADirectoryError when it is a file.
    """
    directory = Path(folder)
    if not directory.exists():
        raise FileNotFoundError(f"frame folder not found: {directory}")
    if not directory.is_dir():
        raise NotADirectoryError(f"frame folder is not a directory: {directory}")
    return sort_frames(path for path in directory.iterdir() if path.is_file() and is_frame_file(path))


def frame_numbers(frames: Sequence[str | Path]) -> list[int]:
    """The frame number of every path, in the given order."""
    return [frame_number(path) for path in frames]


def frame_path(frames: Sequence[str | Path], number: int) -> Path:
    """The path in ``frames`` whose trailing number is ``number``.

    Raises KeyError naming the number and the folder when no frame carries it.
    """
    for path in frames:
        if frame_number(path) == number:
            return Path(path)
    folder = Path(frames[0]).parent if frames else "(no frames)"
    raise KeyError(f"frame {number} not found among {len(frames)} frames in {folder}")


class UnreadableImageError(ValueError):
    """An image file exists but cannot be decoded (empty, corrupt or not an image); the message names it."""


def read_frame(path: str | Path) -> np.ndarray:
    """Read an image file as an (H, W, 3) RGB uint8 array.

    Greyscale images are replicated to 3 channels, an alpha channel is dropped and 16-bit
    images are scaled to 8 bits. Raises FileNotFoundError for a missing file and UnreadableImageError (a
    ValueError), naming the file, for an empty or undecodable one.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"frame file not found: {file}")
    data = np.fromfile(file, dtype=np.uint8)
    if data.size == 0:
        raise UnreadableImageError(f"frame file is empty (0 bytes): {file}")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UnreadableImageError(f"frame file cannot be decoded as an image: {file}")
    return _to_rgb_uint8(image, file)


def read_grey(path: str | Path) -> np.ndarray:
    """Read an image file as an (H, W) uint8 luminance array (errors as in ``read_frame``)."""
    return to_grey(read_frame(path))


def to_grey(image: np.ndarray, name: str = "image") -> np.ndarray:
    """A uint8 grey (H, W) array from a uint8 grey (H, W), (H, W, 1) or RGB (H, W, 3) array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"{name} must be a uint8 numpy array, got {dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if image.ndim != 2:
        raise ValueError(f"{name} must be grey (H, W) or RGB (H, W, 3), got shape {image.shape}")
    return np.ascontiguousarray(image)


def _to_rgb_uint8(image: np.ndarray, file: Path) -> np.ndarray:
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"unsupported pixel type {image.dtype} in frame file {file}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    channels = image.shape[2]
    if channels == 1:
        return np.repeat(image, 3, axis=2)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise ValueError(f"unsupported channel count {channels} in frame file {file}")
