"""Folds of the protocols and their subject disjointness."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from micronbert.data.table import make_table
from micronbert.evaluation.folds import (
    Fold,
    SubjectLeakError,
    assert_subject_disjoint,
    lodo_folds,
    loso_folds,
    make_folds,
    split_folds,
)


def _composite() -> pd.DataFrame:
    rows = [dict(dataset=dataset, subject=f"{dataset}/{subject}", clip=f"c{index}", onset=1, apex=2, offset=3,
                 label=index % 3, emotion="x", apex_source="annotated")
            for dataset in ("casme2", "samm") for subject in ("s1", "s2") for index in range(3)]
    return make_table(rows)


def test_loso_gives_one_disjoint_fold_per_namespaced_subject() -> None:
    table = _composite()
    folds = list(loso_folds(table))
    assert [fold.name for fold in folds] == ["casme2/s1", "casme2/s2", "samm/s1", "samm/s2"]
    tested = np.concatenate([fold.test for fold in folds])
    assert sorted(tested.tolist()) == list(range(len(table)))
    for fold in folds:
        assert set(fold.train).isdisjoint(fold.test) and len(fold.train) + len(fold.test) == len(table)
        assert set(table["subject"].iloc[fold.test]) == {fold.name}


def test_lodo_and_split_folds() -> None:
    table = _composite()
    lodo = list(lodo_folds(table))
    assert [fold.name for fold in lodo] == ["casme2", "samm"]
    assert set(table["dataset"].iloc[lodo[0].test]) == {"casme2"}
    assert set(table["dataset"].iloc[lodo[0].train]) == {"samm"}
    (split,) = split_folds(table, ["samm/s2", "casme2/s1"])
    assert set(table["subject"].iloc[split.test]) == {"samm/s2", "casme2/s1"}
    with pytest.raises(ValueError, match="sub9"):
        make_folds(table, "split", ["sub9"])
    with pytest.raises(ValueError, match="two datasets"):
        list(lodo_folds(table[table["dataset"] == "samm"]))


def test_subject_leak_is_refused() -> None:
    table = _composite()
    with pytest.raises(SubjectLeakError, match="casme2/s1"):
        assert_subject_disjoint(table, Fold("bad", np.array([0, 1, 3]), np.array([2])))
