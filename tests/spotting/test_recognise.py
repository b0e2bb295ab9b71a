"""Spot-then-recognise: leave-one-subject-out recognition of spotted micro-expressions, checked with a method whose
predictions follow from its training rows (the majority class), and that no fit sees the held-out subject."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from micronbert.evaluation.methods import Method
from micronbert.spotting import strs
from micronbert.spotting.recognise import UNRECOGNISED, spot_then_recognise, str_classes
from micronbert.train.finetune import FinetuneConfig

VIDEOS = {"s15_0101": "s15", "s16_0102": "s16", "s19_0401": "s19"}
# annotated micro-expressions: s15 two positive, s16 two negative, s19 one surprise
TRUTH = pd.DataFrame([
    ("casme_sq", "s15_0101", "s15", "micro", 10, 13, 18, "positive"),
    ("casme_sq", "s15_0101", "s15", "micro", 40, 44, 50, "positive"),
    ("casme_sq", "s16_0102", "s16", "micro", 20, 23, 28, "negative"),
    ("casme_sq", "s16_0102", "s16", "micro", 50, 52, 58, "negative"),
    ("casme_sq", "s19_0401", "s19", "micro", 30, 33, 38, "surprise"),
    ("casme_sq", "s19_0401", "s19", "macro", 5, 9, 25, "positive"),
], columns=["dataset", "video", "subject", "type", "onset", "apex", "offset", "emotion"]).assign(fps=30.0)


class MajorityMethod(Method):
    """Predicts the most frequent class of its training rows (ties: the lowest class index); records every fit."""

    name = "majority"
    fits: list[np.ndarray]

    def read(self, table: pd.DataFrame, skip_bad: bool = False, progress: bool = False):
        self.table = table
        rows = np.arange(len(table))
        return type("Samples", (), {"labels": table["label"].to_numpy(dtype=np.int64), "rows": rows,
                                    "keys": [str(r) for r in rows], "skipped": [], "__len__": lambda s: len(rows)})()

    def prepare(self, samples, synthetic=None) -> None:
        self.samples, self.fits = samples, []

    def fit(self, train: np.ndarray, *, target=None, watch=None) -> None:
        self.fits.append(np.asarray(train))
        self.majority = int(np.bincount(self.samples.labels[train], minlength=self.num_classes).argmax())

    def predict_proba(self, test: np.ndarray) -> np.ndarray:
        return np.eye(self.num_classes)[[self.majority] * len(test)]


def recording(methods: list[MajorityMethod]):
    def build(config: FinetuneConfig, num_classes: int) -> MajorityMethod:
        methods.append(MajorityMethod(config, num_classes))
        return methods[-1]

    return build


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("frames")
    result = {}
    for video in VIDEOS:
        folder = root / video
        folder.mkdir()
        for number in range(1, 61):
            cv2.imwrite(str(folder / f"img{number:03d}.png"), np.full((16, 16, 3), number, dtype=np.uint8))
        result[video] = folder
    return result


def spotted_like_truth() -> pd.DataFrame:
    micro = TRUTH[TRUTH["type"] == "micro"]
    return micro[["video", "subject", "type", "onset", "apex", "offset"]].assign(score=1.0).reset_index(drop=True)


def test_each_subject_is_recognised_by_a_method_fitted_on_the_other_subjects(folders):
    methods: list[MajorityMethod] = []
    result = spot_then_recognise(spotted_like_truth(), TRUTH, folders, recording(methods))

    assert result.classes == {"casme_sq": ["negative", "positive", "surprise"]}
    # held out s15: trained on s16 (2 negative) + s19 (1 surprise) -> negative; s16: positive; s19: tie -> negative
    assert result.predictions["emotion"].tolist() == ["negative", "negative", "positive", "positive", "negative"]
    table = result.tables["casme_sq"]
    for fold, train in zip(result.folds, methods[0].fits, strict=True):
        trained = table.iloc[train]
        assert set(trained["subject"]) == {f"casme_sq/{s}" for s in VIDEOS.values() if s != fold.subject}
        assert not trained["clip"].str.contains("spotted").any(), "a spotted row (placeholder label) was trained on"
        assert tuple(train) == fold.train_rows and fold.subject not in fold.train_subjects
        tested = table.iloc[list(fold.test_rows)]
        assert set(tested["subject"]) == {f"casme_sq/{fold.subject}"} and tested["clip"].str.contains("spotted").all()
    assert len(table) == 10 and set(table["label"].iloc[:5]) == {0, 1, 2}


def test_strs_of_the_recognised_intervals(folders):
    result = spot_then_recognise(spotted_like_truth(), TRUTH, folders, recording([]))

    score = result.scores["casme_sq"]["strs"]
    # every spotted interval is a GT micro-expression: spotting F1 1; pairs (pred, GT): (neg, pos) x2, (pos, neg) x2,
    # (neg, sur): no emotion right, so the analysis F1 is 0
    assert (score.tp, score.fp, score.fn) == (5, 0, 0) and score.spotting_f1 == 1.0
    assert score.analysis_f1 == 0.0 and score.strs == 0.0
    reference = strs(result.predictions, TRUTH[TRUTH["type"] == "micro"], ["negative", "positive", "surprise"])
    assert reference.as_dict() == score.as_dict()
    assert set(result.scores["casme_sq"]) == {"strs", "one-to-one"}
    assert set(result.scores_table()["rule"]) == {"strs", "one-to-one"}


def test_a_mapping_chooses_the_classes_and_unmapped_emotions_are_not_trained_on(folders):
    methods: list[MajorityMethod] = []
    mapping = {"positive": "positive", "negative": "negative"}
    result = spot_then_recognise(spotted_like_truth(), TRUTH, folders, recording(methods), emotions=mapping)

    assert result.classes["casme_sq"] == ["negative", "positive"]
    assert any("surprise" in reason for _, reason in result.skipped)
    table = result.tables["casme_sq"]
    assert "surprise" not in set(table["emotion"].dropna())
    # s19 held out: trained on two positive and two negative -> the tie goes to negative
    assert result.predictions.loc[result.predictions["subject"] == "s19", "emotion"].tolist() == ["negative"]
    assert str_classes(TRUTH) == ["negative", "positive", "surprise"] and str_classes(TRUTH, mapping) == [
        "negative", "positive"]


def test_an_interval_without_frames_is_unrecognised_and_still_counts(folders, tmp_path):
    spotted = spotted_like_truth()
    spotted.loc[len(spotted)] = ["s15_0101", "s15", "micro", 70, 72, 75, 0.5]  # beyond the last frame (60)

    result = spot_then_recognise(spotted, TRUTH, folders, recording([]))

    assert result.predictions["emotion"].iloc[-1] == UNRECOGNISED
    assert result.scores["casme_sq"]["one-to-one"].fp == 1


def test_a_spotted_apex_in_a_gap_moves_to_the_nearest_frame(tmp_path):
    gappy = {}
    for video in VIDEOS:
        folder = tmp_path / video
        folder.mkdir()
        for number in [*range(1, 12), *range(14, 61)]:
            cv2.imwrite(str(folder / f"img{number:03d}.png"), np.zeros((8, 8, 3), dtype=np.uint8))
        gappy[video] = folder
    spotted = spotted_like_truth().iloc[:1].assign(apex=12)

    result = spot_then_recognise(spotted, TRUTH, gappy, recording([]))

    spotted_row = result.tables["casme_sq"].iloc[-1]
    assert spotted_row["apex"] == 11 and spotted_row["onset"] == 10
    assert result.predictions["emotion"].iloc[0] != UNRECOGNISED


def test_a_registered_method_runs_by_name(folders):
    result = spot_then_recognise(spotted_like_truth(), TRUTH, folders, "flowgrid")

    assert set(result.predictions["emotion"]) <= {"negative", "positive", "surprise"}
    assert len(result.folds) == 3


def test_refusals(folders):
    with pytest.raises(ValueError, match="at least two emotion classes"):
        spot_then_recognise(spotted_like_truth(), TRUTH.assign(emotion="positive"), folders, recording([]))

    class Adapting(MajorityMethod):
        transductive = True

    with pytest.raises(ValueError, match="never lets a fit read the held-out subject"):
        spot_then_recognise(spotted_like_truth(), TRUTH, folders, Adapting)
    with pytest.raises(ValueError, match="have no frame folder"):
        spot_then_recognise(spotted_like_truth(), TRUTH, {"s15_0101": folders["s15_0101"]}, recording([]))
    with pytest.raises(ValueError, match="spotted: missing column"):
        spot_then_recognise(spotted_like_truth().drop(columns="subject"), TRUTH, folders, recording([]))
