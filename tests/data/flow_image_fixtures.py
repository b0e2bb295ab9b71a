"""Miniature copies of the precomputed image folders in circulation (docs/DATASETS.md, "Precomputed inputs in
circulation"), with the published naming quirks, for the tests of micronbert.data.flow_images.

``SAMPLES`` mixes the three composite datasets as the MEGC 2019 ground truth writes them (SAMM subjects
unpadded); the builders derive every folder and file name from it, so tests take their expectations from it.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from tests.data.fixture_trees import write_megc_gt

Sample = tuple[str, str, str, int]  # database, subject as the MEGC 2019 ground truth writes it, clip, label
SAMPLES: tuple[Sample, ...] = (
    ("casme2", "sub01", "EP02_01f", 1),
    ("casme2", "sub01", "EP19_05f", 0),
    ("casme2", "sub03", "EP06_02_01", 2),
    ("samm", "6", "006_1_2", 0),
    ("samm", "26", "026_1_1", 2),
    ("samm", "26", "026_2_1", 1),
    ("smic", "s01", "s01_ne_01", 0),
    ("smic", "s01", "s01_po_02", 1),
    ("smic", "s11", "s11_sur_03", 2),
)
IMAGE_SIZE = 6


def subject_folder(sample: Sample) -> str:
    """The subject as the published folders write it (SAMM zero-padded to 3 digits)."""
    dataset, subject = sample[0], sample[1]
    return f"{int(subject):03d}" if dataset == "samm" else subject


def flow_name(sample: Sample) -> str:
    """The flow images' published name: ``<subject>_<clip> .png`` with a space before the extension."""
    return f"{subject_folder(sample)}_{sample[2]} .png"


def apex_name(sample: Sample) -> str:
    """The apex crops' published name; SMIC clips carry an unpadded subject (``s01_s1_ne_01.jpg``)."""
    clip = sample[2]
    if sample[0] == "smic":
        clip = re.sub(r"^s0*(\d+)_", r"s\1_", clip)
    return f"{subject_folder(sample)}_{clip}.jpg"


def sample_pixels(index: int, channels: int = 3, size: int = IMAGE_SIZE) -> np.ndarray:
    """A small image that differs for every sample index: a gradient plus a per-sample pattern."""
    grid = np.add.outer(np.arange(size), np.arange(size)) * 9
    planes = [(grid + 37 * index + 80 * channel) % 256 for channel in range(channels)]
    image = np.stack(planes, axis=2).astype(np.uint8)
    return image[:, :, 0] if channels == 1 else image


def write_image(path: Path, pixels: np.ndarray, png_compression: int = 3) -> Path:
    """Encode ``pixels`` by the file's extension (PNG at the given compression level) and write them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_PNG_COMPRESSION, png_compression] if path.suffix == ".png" else []
    ok, encoded = cv2.imencode(path.suffix, pixels, params)
    if not ok:
        raise OSError(f"could not encode test image {path}")
    path.write_bytes(encoded.tobytes())
    return path


def build_loso_tree(base: Path, samples: Sequence[Sample] = SAMPLES, name: Callable[[Sample], str] = flow_name,
                    folder: Callable[[Sample], str] = subject_folder) -> Path:
    """``three_norm_u_v_os/<subject>/u_test|u_train/<label>/<name>``: every fold holds every sample, as a test
    copy in its own subject's fold and as train copies (other PNG compression, same pixels) in the others."""
    root = base / "three_norm_u_v_os"
    folds = sorted({folder(sample) for sample in samples})
    for fold in folds:
        for index, sample in enumerate(samples):
            own = folder(sample) == fold
            target = root / fold / ("u_test" if own else "u_train") / str(sample[3]) / name(sample)
            write_image(target, sample_pixels(index), png_compression=9 if own else 0)
    return root


def build_flat(base: Path, samples: Sequence[Sample] = SAMPLES, name: Callable[[Sample], str] = flow_name,
               channels: int = 3, folder_name: str = "STSNet_whole_norm_u_v_os") -> Path:
    """A flat folder with one image per sample, named by ``name``."""
    root = base / folder_name
    root.mkdir(parents=True, exist_ok=True)
    for index, sample in enumerate(samples):
        write_image(root / name(sample), sample_pixels(index, channels))
    return root


def write_official_gt(path: Path, samples: Sequence[Sample] = SAMPLES) -> Path:
    """``combined_3class_gt.csv`` as published (no header, SAMM subjects unpadded)."""
    return write_megc_gt(path, list(samples))


def write_htnet_gt(path: Path, samples: Sequence[Sample] = SAMPLES, apex: dict[str, int] | None = None) -> Path:
    """The HTNet-style ``combined_3_class2_for_optical_flow.csv`` (SAMM subjects zero-padded, apex names in
    ``imagename``); ``apex`` gives apex frames by clip (the published file leaves the column empty)."""
    apex = apex or {}
    lines = ["dataset,sub,filename_o,label,apex,imagename,sub_filename"]
    lines += [f"{s[0]},{subject_folder(s)},{s[2]},{s[3]},{apex.get(s[2], '')},{apex_name(s)}," for s in samples]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
