"""Evaluation protocols as folds of a sample table, each checked for subject disjointness before anything trains.

Protocols: ``loso`` (one fold per subject; on a multi-dataset table such as the MEGC 2019 composite the subjects
are namespaced by dataset, giving 68 folds there), ``megc2019`` (the same, reported per dataset too), ``lodo``
(leave one dataset out) and ``split`` (one fixed train/test split by subject). See docs/DATASETS.md.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

PROTOCOLS = ("loso", "megc2019", "lodo", "split")


class SubjectLeakError(AssertionError):
    """A subject appears in both the training and the test part of a fold."""


@dataclass(frozen=True)
class Fold:
    """One train/test split: row positions into the evaluated table."""

    name: str
    train: np.ndarray
    test: np.ndarray


def assert_subject_disjoint(table: pd.DataFrame, fold: Fold) -> None:
    """Raise :class:`SubjectLeakError` naming the subjects if training and test parts share one."""
    train_subjects = set(table["subject"].iloc[fold.train])
    test_subjects = set(table["subject"].iloc[fold.test])
    shared = sorted(train_subjects & test_subjects)
    if shared:
        raise SubjectLeakError(f"fold {fold.name}: subject(s) {shared} in both training and test sets")


def _checked(table: pd.DataFrame, folds: Iterator[Fold]) -> Iterator[Fold]:
    for fold in folds:
        assert_subject_disjoint(table, fold)
        yield fold


def loso_folds(table: pd.DataFrame) -> Iterator[Fold]:
    """Leave one subject out: one fold per (namespaced) subject, in sorted order."""
    subjects = table["subject"].astype(str).to_numpy()
    positions = np.arange(len(table))

    def folds() -> Iterator[Fold]:
        for subject in sorted(set(subjects)):
            yield Fold(subject, positions[subjects != subject], positions[subjects == subject])
    return _checked(table, folds())


def lodo_folds(table: pd.DataFrame) -> Iterator[Fold]:
    """Leave one dataset out: one fold per dataset (needs at least two datasets)."""
    datasets = table["dataset"].astype(str).to_numpy()
    names = sorted(set(datasets))
    if len(names) < 2:
        raise ValueError(f"leave-one-dataset-out needs at least two datasets, the table holds {names}")
    positions = np.arange(len(table))
    return _checked(table, (Fold(name, positions[datasets != name], positions[datasets == name]) for name in names))


def split_folds(table: pd.DataFrame, test_subjects: Sequence[str]) -> Iterator[Fold]:
    """One fixed split: the samples of ``test_subjects`` are tested, the others train."""
    subjects = table["subject"].astype(str).to_numpy()
    unknown = sorted(set(test_subjects) - set(subjects))
    if unknown:
        raise ValueError(f"test subject(s) {unknown} have no usable samples: not in the table (subjects are "
                         "namespaced, e.g. casme2/sub01), or every sample was dropped by the class scheme or skipped")
    test = np.isin(subjects, list(test_subjects))
    positions = np.arange(len(table))
    return _checked(table, iter([Fold("split", positions[~test], positions[test])]))


def make_folds(table: pd.DataFrame, protocol: str, test_subjects: Sequence[str] = ()) -> list[Fold]:
    """The folds of ``protocol`` (see ``PROTOCOLS``) over ``table``."""
    if protocol in ("loso", "megc2019"):
        return list(loso_folds(table))
    if protocol == "lodo":
        return list(lodo_folds(table))
    if protocol == "split":
        if not test_subjects:
            raise ValueError("the split protocol needs test subjects (--test-subjects)")
        return list(split_folds(table, test_subjects))
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
