"""Labelled (onset, apex) pairs read from a sample table, resized to a model's input size: what recognition
methods train and test on."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from micronbert.data.frames import frame_path, read_frame
from micronbert.data.table import sample_key
from micronbert.data.transforms import resize_square


class SampleError(ValueError):
    """A sample that cannot be used; the message names it."""


@dataclass
class LabelledPairs:
    """Onset/apex pairs (n, S, S, 3) uint8 with their labels.

    ``keys[i]`` names sample i (:func:`micronbert.data.table.sample_key`); ``rows[i]`` is its row index in
    the table given to :func:`load_labelled_pairs`; ``skipped`` lists (sample key, reason) of the rows left out.
    """

    onsets: np.ndarray
    apexes: np.ndarray
    labels: np.ndarray
    keys: list[str]
    rows: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def row_key(row: Any) -> str:
    """The readable key of a table row (a namedtuple from ``itertuples``)."""
    return sample_key(row.dataset, row.subject, row.clip, row.onset)


def read_pair(row: Any, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The onset and apex frames of one table row, each resized to size×size uint8 RGB.

    Raises :class:`SampleError` naming the sample for a label-independent problem: onset after apex, apex
    outside the clip, a missing or unreadable frame, onset and apex of different sizes.
    """
    key = row_key(row)
    if pd.isna(row.onset) or pd.isna(row.apex):
        raise SampleError(f"{key}: onset or apex frame is not known")
    onset, apex = int(row.onset), int(row.apex)
    if onset > apex:
        raise SampleError(f"{key}: onset {onset} is after apex {apex}")
    if not pd.isna(row.offset) and apex > int(row.offset):
        raise SampleError(f"{key}: apex {apex} is outside the clip (offset {int(row.offset)})")
    frames = list(row.frames)
    if not frames:
        raise SampleError(f"{key}: the table lists no frames (load the dataset with check_frames=True)")
    images = []
    for name, number in (("onset", onset), ("apex", apex)):
        try:
            images.append(read_frame(frame_path(frames, number)))
        except KeyError:
            raise SampleError(f"{key}: {name} frame {number} is not among the clip's frames "
                              f"({Path(frames[0]).parent})") from None
        except (FileNotFoundError, ValueError) as err:
            raise SampleError(f"{key}: {name} frame {number}: {err}") from None
    if images[0].shape != images[1].shape:
        raise SampleError(f"{key}: onset and apex frames differ in size: {images[0].shape[:2]} vs "
                          f"{images[1].shape[:2]}")
    return resize_square(images[0], size), resize_square(images[1], size)


def load_labelled_pairs(table: pd.DataFrame, size: int, skip_bad: bool = False) -> LabelledPairs:
    """Read every labelled sample's onset and apex frames (see :func:`read_pair`).

    A row without a label (the class scheme dropped it) or with an unusable pair raises :class:`SampleError`
    naming it, unless ``skip_bad``: then it is left out and listed in ``skipped``.
    """
    onsets, apexes, labels, keys, rows, skipped = [], [], [], [], [], []
    for index, row in enumerate(table.itertuples(index=False)):
        try:
            if pd.isna(row.label):
                raise SampleError(f"{row_key(row)}: no class label (emotion {row.emotion!r} is not in the "
                                  "class scheme)")
            onset, apex = read_pair(row, size)
        except SampleError as err:
            if not skip_bad:
                raise
            skipped.append((row_key(row), str(err)))
            continue
        onsets.append(onset)
        apexes.append(apex)
        labels.append(int(row.label))
        keys.append(row_key(row))
        rows.append(index)
    empty = np.zeros((0, size, size, 3), dtype=np.uint8)
    return LabelledPairs(np.stack(onsets) if onsets else empty, np.stack(apexes) if apexes else empty,
                         np.asarray(labels, dtype=np.int64), keys, np.asarray(rows, dtype=np.int64), skipped)
