from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

import micronbert.metrics as public
from micronbert.metrics import (
    FoldPredictions,
    balanced_class_weights,
    confusion_matrix,
    per_dataset_metrics,
    pooled_metrics,
    predictions_table,
    read_megc_log,
    write_megc_log,
    write_predictions_csv,
    write_predictions_json,
)


def test_public_module_exposes_pooled_metrics():
    assert public.pooled_metrics is pooled_metrics


def test_hand_computed_case_with_a_class_never_predicted():
    # confusion matrix rows (true): [2, 1, 0], [1, 1, 0], [1, 0, 0]; class 2 is never predicted.
    result = pooled_metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 0, 0], 3)
    assert result["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [1, 0, 0]]
    assert result["f1_per_class"] == pytest.approx([4 / 7, 1 / 2, 0.0])
    assert result["uf1"] == pytest.approx(5 / 14)
    assert result["recall_per_class"] == pytest.approx([2 / 3, 1 / 2, 0.0])
    assert result["uar"] == pytest.approx(7 / 18)
    assert result["precision_per_class"] == pytest.approx([1 / 2, 1 / 2, 0.0])
    assert result["accuracy"] == pytest.approx(1 / 2)
    assert result["support"] == [3, 2, 1]
    assert result["num_samples"] == 6


def test_hand_computed_case_with_a_class_absent_from_y_true():
    # class 3 never occurs but is predicted once: F1_3 = 0 counts in UF1, recall_3 is NaN and left out of UAR.
    result = pooled_metrics([0, 0, 1, 1, 2], [0, 3, 1, 1, 2], 4)
    assert result["f1_per_class"] == pytest.approx([2 / 3, 1.0, 1.0, 0.0])
    assert result["uf1"] == pytest.approx(2 / 3)
    assert result["recall_per_class"][:3] == pytest.approx([1 / 2, 1.0, 1.0])
    assert math.isnan(result["recall_per_class"][3])
    assert result["uar"] == pytest.approx(5 / 6)
    assert result["accuracy"] == pytest.approx(4 / 5)


def test_class_neither_true_nor_predicted_has_f1_zero():
    result = pooled_metrics([0, 1], [0, 1], 4)
    assert result["f1_per_class"] == [1.0, 1.0, 0.0, 0.0]
    assert result["uf1"] == pytest.approx(0.5)
    assert result["uar"] == pytest.approx(1.0)
    assert result["accuracy"] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(6))
def test_matches_sklearn_on_random_pooled_predictions(seed):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(2, 6))
    size = int(rng.integers(1, 40))
    # draw from a subset of the classes so that absent and never-predicted classes occur
    y_true = rng.integers(0, max(1, num_classes - seed % 2), size)
    y_pred = rng.integers(seed % 2, num_classes, size)
    result = pooled_metrics(y_true, y_pred, num_classes)
    labels = list(range(num_classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_uar = balanced_accuracy_score(y_true, y_pred)
    assert result["uf1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0))
    assert result["uar"] == pytest.approx(expected_uar)
    assert result["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert result["f1_per_class"] == pytest.approx(
        f1_score(y_true, y_pred, average=None, labels=labels, zero_division=0).tolist()
    )
    assert result["confusion_matrix"] == sk_confusion_matrix(y_true, y_pred, labels=labels).tolist()


def test_pooling_differs_from_averaging_folds():
    fold_a = ([0, 0, 0], [0, 0, 1])
    fold_b = ([1], [1])
    pooled = pooled_metrics(fold_a[0] + fold_b[0], fold_a[1] + fold_b[1], 2)
    per_fold_mean = (pooled_metrics(*fold_a, 2)["uf1"] + pooled_metrics(*fold_b, 2)["uf1"]) / 2
    assert pooled["uf1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert per_fold_mean == pytest.approx(((0.8 + 0) / 2 + (0 + 1) / 2) / 2)
    assert pooled["uf1"] != pytest.approx(per_fold_mean)


def test_confusion_matrix_counts_rows_as_true_classes():
    matrix = confusion_matrix(np.array([2, 2, 0]), np.array([1, 2, 0]), 3)
    assert matrix.dtype == np.int64
    assert matrix.tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 1]]


@pytest.mark.parametrize(
    ("y_true", "y_pred", "num_classes", "message"),
    [
        ([0, 1], [0], 2, "differ in length"),
        ([], [], 2, "empty"),
        ([0, 2], [0, 1], 2, "y_true holds label 2 outside"),
        ([0, 1], [-1, 1], 2, "y_pred holds label -1 outside"),
        ([0, 1], [0, 1], 0, "num_classes"),
        ([0.5, 1], [0, 1], 2, "integer class ids"),
        ([[0, 1]], [[0, 1]], 2, "one-dimensional"),
    ],
)
def test_invalid_inputs_raise_value_error(y_true, y_pred, num_classes, message):
    with pytest.raises(ValueError, match=message):
        pooled_metrics(y_true, y_pred, num_classes)


def _folds() -> list[FoldPredictions]:
    return [
        FoldPredictions("casme2", "sub01", ("EP02_01f", "EP03_02f"), (0, 1), (0, 0)),
        FoldPredictions("samm", "006", ("006_1_2",), (2,), (2,)),
        FoldPredictions("smic", "s01", ("s01_ne_01", "s01_po_02", "s01_sur_01"), (0, 1, 2), (0, 1, 1)),
    ]


def test_per_dataset_metrics_filters_the_pooled_vector():
    table = predictions_table(_folds())
    results = per_dataset_metrics(table, 3)
    assert list(results) == ["all", "casme2", "samm", "smic"]
    assert results["all"] == pooled_metrics([0, 1, 2, 0, 1, 2], [0, 0, 2, 0, 1, 1], 3)
    casme2 = pooled_metrics([0, 1], [0, 0], 3)
    assert math.isnan(results["casme2"]["recall_per_class"][2])
    for key in ("uf1", "uar", "accuracy", "f1_per_class", "confusion_matrix"):
        assert results["casme2"][key] == casme2[key]
    assert results["smic"]["uf1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert results["samm"]["f1_per_class"] == [0.0, 0.0, 1.0]


def test_per_dataset_metrics_rejects_bad_tables():
    with pytest.raises(ValueError, match="lacks column"):
        per_dataset_metrics(pd.DataFrame({"dataset": ["a"], "gt": [0]}), 2)
    with pytest.raises(ValueError, match="'all'"):
        per_dataset_metrics(pd.DataFrame({"dataset": ["all"], "gt": [0], "pred": [0]}), 2)


def test_predictions_table_has_one_row_per_sample():
    table = predictions_table(_folds())
    assert list(table.columns) == ["dataset", "subject", "clip", "gt", "pred"]
    assert len(table) == 6
    assert table.iloc[2].tolist() == ["samm", "006", "006_1_2", 2, 2]


def test_megc_log_has_the_published_layout_and_round_trips(tmp_path):
    path = tmp_path / "logs" / "megc.txt"
    write_megc_log(_folds(), path)
    lines = path.read_text().splitlines()
    assert lines[:4] == ["casme2 sub01", "EP02_01f 0 0", "EP03_02f 1 0", "samm 006"]
    assert len(lines) == 3 + 6
    assert read_megc_log(path) == _folds()
    assert [entry.name for entry in path.parent.iterdir()] == ["megc.txt"]


def test_megc_reader_ignores_blank_lines(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("\nsmic s01\n\ns01_ne_01 0 1\n")
    assert read_megc_log(path) == [FoldPredictions("smic", "s01", ("s01_ne_01",), (0,), (1,))]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("s01_ne_01 0 1\n", r"log.txt:1: sample line before"),
        ("smic s01\ns01_ne_01 0 1 extra\n", r"log.txt:2: expected"),
        ("smic s01\ns01_ne_01 zero 1\n", r"log.txt:2: label 'zero'"),
        ("smic s01\nsmic s02\ns02_ne_01 0 0\n", r"log.txt:1: fold 'smic s01' has no samples"),
        ("smic s01\na 0 0\nsmic s01\nb 1 1\n", "appears more than once"),
        ("smic s01\na 0 0\na 1 1\n", "more than once"),
    ],
)
def test_megc_reader_names_the_faulty_line(tmp_path, text, message):
    path = tmp_path / "log.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_megc_log(path)


def test_megc_reader_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_megc_log(tmp_path / "nope.txt")


def test_fold_predictions_validates_its_fields():
    with pytest.raises(ValueError, match="differ in length"):
        FoldPredictions("smic", "s01", ("a", "b"), (0,), (0, 1))
    with pytest.raises(ValueError, match="without whitespace"):
        FoldPredictions("smic", "s01", ("a b",), (0,), (0,))
    with pytest.raises(ValueError, match="no samples"):
        FoldPredictions("smic", "s01", (), (), ())


def test_writers_reject_duplicate_folds(tmp_path):
    fold = _folds()[0]
    with pytest.raises(ValueError, match="more than once"):
        write_megc_log([fold, fold], tmp_path / "log.txt")
    assert not (tmp_path / "log.txt").exists()


def test_csv_and_json_hold_the_same_predictions(tmp_path):
    folds = _folds()
    metrics = pooled_metrics([0, 0], [0, 0], 2)  # class 1 absent: its recall is NaN
    write_predictions_csv(folds, tmp_path / "pred.csv")
    write_predictions_json(folds, tmp_path / "pred.json", metrics=metrics)
    table = pd.read_csv(tmp_path / "pred.csv", dtype={"subject": str})
    pd.testing.assert_frame_equal(table, predictions_table(folds))
    document = json.loads((tmp_path / "pred.json").read_text())
    assert [(fold["database"], fold["subject"]) for fold in document["folds"]] == [
        ("casme2", "sub01"), ("samm", "006"), ("smic", "s01")
    ]
    assert document["folds"][2]["y_pred"] == [0, 1, 1]
    assert document["metrics"]["recall_per_class"] == [1.0, None]
    assert document["metrics"]["uf1"] == pytest.approx(0.5)


def test_balanced_class_weights_make_every_present_class_count_equally():
    labels = np.array([0, 0, 0, 0, 1, 3, 3, 3])
    weights = balanced_class_weights(labels, 5)
    totals = np.bincount(labels, weights=weights[labels], minlength=5)
    assert totals[[0, 1, 3]] == pytest.approx([8 / 3] * 3) and totals[[2, 4]].tolist() == [0.0, 0.0]
    assert weights[[2, 4]].tolist() == [0.0, 0.0]
    assert balanced_class_weights([1, 0, 1, 0], 2).tolist() == [1.0, 1.0]
