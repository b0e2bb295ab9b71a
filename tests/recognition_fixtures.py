"""Fixtures shared by the recognition tests."""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from micronbert.data.synthetic import SynthConfig, write_synthetic_dataset
from micronbert.datasets import load

SCHEME = "casme2-5class"


def synthetic_casme2_table(folder: Path, subjects: int) -> pd.DataFrame:
    """A small synthetic CASME II-like tree (4 clips per subject, 64 px) read by the CASME II reader."""
    dataset = write_synthetic_dataset(folder / "data", SynthConfig(
        subjects=subjects, clips_per_subject=4, size=64, unlabeled_videos=0, write_mp4=False,
        duration_s=(0.05, 0.1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load("casme2", dataset.casme2_root, scheme=SCHEME)
