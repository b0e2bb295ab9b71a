"""Helpers shared by the recognition tests: a small synthetic CASME II table and configurations."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from micronbert.config import set_values
from micronbert.data.synthetic import SynthConfig, write_synthetic_dataset
from micronbert.datasets import load
from micronbert.train.finetune import FinetuneConfig

SCHEME = "casme2-5class"


def synthetic_casme2_table(folder: Path, subjects: int) -> pd.DataFrame:
    """A small synthetic CASME II-like tree (4 clips per subject, 64 px) read by the CASME II reader."""
    dataset = write_synthetic_dataset(folder / "data", SynthConfig(
        subjects=subjects, clips_per_subject=4, size=64, unlabeled_videos=0, write_mp4=False,
        duration_s=(0.05, 0.1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load("casme2", dataset.casme2_root, scheme=SCHEME)


def recognition_config(values: dict[str, Any] | None = None) -> FinetuneConfig:
    """A recognition configuration with ``values`` (dotted keys, e.g. ``{"train.epochs": 1}``) set."""
    return FinetuneConfig.from_dict(set_values({}, values or {}))
