"""The spotting metric (MEGC2020 and one-to-one counting) and STRS, on hand-built cases whose answers follow from the
rules' definitions (docs/SPOTTING.md) and on published counts."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from micronbert.spotting import (
    POOLED,
    EmotionCounts,
    SpottingCounts,
    StrsResult,
    interval_iou,
    read_intervals,
    scores_table,
    spotting_log,
    spotting_scores,
    spotting_scores_by_dataset,
    strs,
)
from micronbert.spotting.metric import maximum_matching, megc2020_iou

BOTH_RULES = ["megc2020", "one-to-one"]


SPOT_COLUMNS = ("video", "onset", "offset", "type")


def intervals(*rows: tuple[object, ...], columns: tuple[str, ...] = SPOT_COLUMNS) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(columns))


def test_iou_on_inclusive_frame_sets() -> None:
    iou = interval_iou([1, 1, 5, 1], [10, 5, 5, 10], [1, 6, 5, 4], [5, 10, 5, 13])
    assert iou[0, 0] == pytest.approx(5 / 10)  # [1..10] vs [1..5]
    assert iou[1, 1] == 0.0  # [1..5] vs [6..10]: touching, no common frame
    assert iou[2, 2] == 1.0  # one frame each, the same one
    assert iou[3, 3] == pytest.approx(7 / 13)  # [1..10] vs [4..13]


def test_megc2020_iou_keeps_the_scorers_quirks() -> None:
    iou = megc2020_iou([1, 5, 1], [5, 5, 10], [7, 5, 4], [10, 5, 13])
    assert iou[0, 0] == pytest.approx(1 / 8)  # disjoint: intersection counted as 1 frame
    assert iou[1, 1] == 0.0  # one-frame intervals never match
    assert iou[2, 2] == pytest.approx(7 / 13)  # otherwise the inclusive IoU


@pytest.mark.parametrize("rule", BOTH_RULES)
def test_a_hit_needs_iou_of_at_least_one_half(rule: str) -> None:
    truth = intervals(("v", 1, 5, "micro"), ("w", 1, 4, "micro"))
    predicted = intervals(("v", 1, 10, "micro"), ("w", 1, 10, "micro"))
    scores = spotting_scores(predicted, truth, rule)["micro"]
    assert (scores.tp, scores.n_pred, scores.n_true) == (1, 2, 2)  # 5/10 is a hit, 4/10 is not


def test_one_prediction_over_two_gt_intervals_is_where_the_rules_differ() -> None:
    truth = intervals(("v", 1, 10, "macro"), ("v", 2, 10, "macro"))
    predicted = intervals(("v", 1, 10, "macro"), ("v", 50, 60, "macro"))
    megc = spotting_scores(predicted, truth, "megc2020")["macro"]
    strict = spotting_scores(predicted, truth, "one-to-one")["macro"]
    assert (megc.tp, megc.precision, megc.recall, megc.f1) == (2, 1.0, 1.0, 1.0)
    assert (strict.tp, strict.precision, strict.recall, strict.f1) == (1, 0.5, 0.5, 0.5)


@pytest.mark.parametrize("rule", BOTH_RULES)
def test_two_predictions_on_one_gt_interval_give_one_tp(rule: str) -> None:
    truth = intervals(("v", 1, 10, "macro"))
    predicted = intervals(("v", 1, 10, "macro"), ("v", 2, 10, "macro"))
    scores = spotting_scores(predicted, truth, rule)["macro"]
    assert (scores.tp, scores.precision, scores.recall) == (1, 0.5, 1.0)


def test_one_to_one_finds_the_maximum_matching_not_the_greedy_one() -> None:
    # P1 = [1, 10] hits A = [1, 10] (IoU 1) and B = [4, 13] (7/13); P2 = [1, 6] hits A only (6/10). Greedy by IoU
    # pairs P1 with A and leaves B alone; the maximum matching pairs P1-B and P2-A.
    truth = intervals(("v", 1, 10, "macro"), ("v", 4, 13, "macro"))
    predicted = intervals(("v", 1, 10, "macro"), ("v", 1, 6, "macro"))
    assert spotting_scores(predicted, truth, "one-to-one")["macro"].tp == 2
    log = spotting_log(predicted, truth, "one-to-one")
    pairs = {(row.gt_onset, row.pred_offset) for row in log.itertuples() if row.result == "TP"}
    assert pairs == {(4, 10), (1, 6)}


def test_maximum_matching_on_a_chain() -> None:
    hits = np.array([[True, True, False], [True, False, False], [False, True, True]])
    matching = maximum_matching(hits, hits.astype(float))
    assert len(matching) == 3 and sorted(matching.values()) == [0, 1, 2]
    assert all(hits[p, g] for g, p in matching.items())


def test_one_frame_intervals_match_only_under_one_to_one() -> None:
    truth = intervals(("v", 5, 5, "micro"))
    predicted = intervals(("v", 5, 5, "micro"))
    assert spotting_scores(predicted, truth, "megc2020")["micro"].tp == 0
    assert spotting_scores(predicted, truth, "one-to-one")["micro"].tp == 1


@pytest.mark.parametrize("rule", BOTH_RULES)
def test_classes_are_scored_apart_and_pooled_overall(rule: str) -> None:
    truth = intervals(("v", 1, 10, "micro"), ("v", 100, 200, "macro"), ("v", 300, 400, "macro"), ("v", 1, 10, "blink"))
    predicted = intervals(("v", 1, 10, "macro"), ("v", 100, 200, "macro"), ("v", 300, 400, "blink"))
    scores = spotting_scores(predicted, truth, rule)
    assert (scores["micro"].tp, scores["micro"].n_pred, scores["micro"].n_true) == (0, 0, 1)
    assert (scores["macro"].tp, scores["macro"].n_pred, scores["macro"].n_true) == (1, 2, 2)
    assert scores["overall"] == SpottingCounts(tp=1, n_pred=2, n_true=3)  # blinks are left out of both tables


@pytest.mark.parametrize("rule", BOTH_RULES)
def test_counts_are_pooled_over_videos_not_averaged(rule: str) -> None:
    truth = intervals(("v", 1, 10, "micro"), ("w", 1, 10, "micro"))
    predicted = intervals(("v", 1, 10, "micro"), ("w", 50, 60, "micro"), ("w", 70, 80, "micro"),
                          ("x", 1, 10, "micro"))  # video x has no GT: its prediction is a false positive
    scores = spotting_scores(predicted, truth, rule)["micro"]
    assert (scores.tp, scores.n_pred, scores.n_true) == (1, 4, 2)
    assert scores.precision == pytest.approx(1 / 4) and scores.recall == pytest.approx(1 / 2)
    assert scores.f1 == pytest.approx(1 / 3)  # per-video F1s would average to 0.5


def test_no_predictions_and_no_truth_give_zero_scores() -> None:
    scores = spotting_scores(intervals(), intervals(("v", 1, 10, "micro")))
    assert scores["micro"].as_dict() == {"tp": 0, "n_pred": 0, "n_true": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def _hits_and_misses(dataset: str, n_true: int, n_pred: int, tp: int, kind: str = "macro") -> tuple[pd.DataFrame, ...]:
    """A video with ``n_true`` disjoint GT intervals and ``n_pred`` predictions of which ``tp`` repeat a GT."""
    gt = [(f"{dataset}_v", 1000 * k + 1, 1000 * k + 100, kind) for k in range(n_true)]
    hits = gt[:tp]
    misses = [(f"{dataset}_v", 10**7 + 200 * j, 10**7 + 200 * j + 50, kind) for j in range(n_pred - tp)]
    return intervals(*hits, *misses).assign(dataset=dataset), intervals(*gt).assign(dataset=dataset)


def test_by_dataset_and_pooled_reproduce_the_published_megc2022_baseline_row() -> None:
    # 3D-CNN baseline, MEGC2022 unseen sets: CAS_Test P 0.4000 R 0.1111 F1 0.1739, SAMM_Test P 0.0845 R 0.1935
    # F1 0.1176, overall P 0.1235 R 0.1493 F1 0.1351; these are the counts 4/10/36 and 6/71/31 (docs/SPOTTING.md)
    cas_pred, cas_true = _hits_and_misses("cas", n_true=36, n_pred=10, tp=4)
    samm_pred, samm_true = _hits_and_misses("samm", n_true=31, n_pred=71, tp=6)
    predicted, truth = pd.concat([cas_pred, samm_pred]), pd.concat([cas_true, samm_true])
    scores = spotting_scores_by_dataset(predicted.drop(columns="dataset"), truth)
    published = {"cas": (0.4000, 0.1111, 0.1739), "samm": (0.0845, 0.1935, 0.1176), POOLED: (0.1235, 0.1493, 0.1351)}
    for name, values in published.items():
        overall = scores[name]["overall"]
        assert tuple(round(v, 4) for v in (overall.precision, overall.recall, overall.f1)) == values
    assert scores[POOLED]["macro"] == SpottingCounts(10, 81, 67)
    table = scores_table(scores)
    assert set(table["dataset"]) == {"cas", "samm", POOLED} and len(table) == 9


def test_overall_f1_of_the_megc2020_baseline_from_its_published_counts() -> None:
    # MDMD (MEGC2020 baseline) counts and F1 (docs/SPOTTING.md): CAS(ME)^2 ME 21/5035/57 -> 0.0082,
    # MaE 109/1523/300 -> 0.1196, overall 0.0376; SAMM-LV ME 29/1436/159 -> 0.0364, MaE 22/356/343 -> 0.0629,
    # overall 0.0445
    published = {"casme_sq": ((21, 5035, 57), (109, 1523, 300), (0.0082, 0.1196, 0.0376)),
                 "samm_lv": ((29, 1436, 159), (22, 356, 343), (0.0364, 0.0629, 0.0445))}
    for dataset, (micro, macro, f1s) in published.items():
        micro_pred, micro_true = _hits_and_misses(dataset, micro[2], micro[1], micro[0], "micro")
        macro_pred, macro_true = _hits_and_misses(dataset + "_macro", macro[2], macro[1], macro[0], "macro")
        scores = spotting_scores(pd.concat([micro_pred, macro_pred]).drop(columns="dataset"),
                                 pd.concat([micro_true, macro_true]).drop(columns="dataset"), "megc2020")
        assert tuple(round(scores[kind].f1, 4) for kind in ("micro", "macro", "overall")) == f1s


def test_several_datasets_need_the_by_dataset_function() -> None:
    truth = intervals(("v", 1, 10, "micro")).assign(dataset="a")
    predicted = intervals(("w", 1, 10, "micro")).assign(dataset="b")
    with pytest.raises(ValueError, match="several datasets"):
        spotting_scores(predicted, truth)
    with pytest.raises(ValueError, match="absent from truth"):
        spotting_scores_by_dataset(predicted.drop(columns="dataset"), truth)
    with pytest.raises(ValueError, match="unknown spotting rule"):
        spotting_scores(predicted, truth, rule="voc")
    with pytest.raises(ValueError, match="threshold"):
        spotting_scores(predicted, truth, threshold=0)


def test_megc2020_log_pairs_as_the_official_log_does() -> None:
    # P1 validates A and B: one TP line from the prediction's side (first GT it hits), one from B's side
    truth = intervals(("v", 1, 10, "macro"), ("v", 2, 10, "macro"), ("v", 500, 560, "macro"), ("v", 20, 28, "micro"))
    predicted = intervals(("v", 300, 330, "macro"), ("v", 1, 10, "macro"), ("v", 21, 28, "micro"))
    log = spotting_log(predicted, truth, "megc2020")
    rows = [(r.type, r.gt_onset, r.gt_offset, r.pred_onset, r.pred_offset, r.result) for r in log.itertuples()]
    assert [tuple(None if pd.isna(v) else v for v in row) for row in rows] == [
        ("macro", 1, 10, 1, 10, "TP"),
        ("macro", 2, 10, 1, 10, "TP"),
        ("micro", 20, 28, 21, 28, "TP"),
        ("macro", None, None, 300, 330, "FP"),
        ("macro", 500, 560, None, None, "FN"),
    ]
    strict = spotting_log(predicted, truth, "one-to-one")
    assert strict["result"].value_counts().to_dict() == {"TP": 2, "FN": 2, "FP": 1}


MEGC2020_FIXTURE = {  # docs/SPOTTING.md: (N_pred, M_gt, TP under megc2020, TP under one-to-one)
    ("ME2", "micro"): (5035, 57, 21, 21),
    ("ME2", "macro"): (1523, 300, 109, 104),
    ("SAMM_MEGC", "micro"): (1436, 159, 29, 29),
    ("SAMM_MEGC", "macro"): (356, 343, 22, 22),
}
MEGC2020_LENGTHS = {("ME2", "micro"): (7, 16), ("ME2", "macro"): (17, None), ("SAMM_MEGC", "micro"): (47, 105),
                    ("SAMM_MEGC", "macro"): (106, None)}


def _baseline_truth(root: Path, dataset: str, kind: str) -> pd.DataFrame:
    """The ground truth the MEGC2020 baseline scored against: SAMM-LV from its ``SAMM_MEGC_Sets/all_Info.txt``
    (frames as it wrote them), CAS(ME)^2 from the dataset's own sheet (``MICRONBERT_CASME_SQ_ROOT``) read by
    micronbert's reader, since the baseline's repository holds no CAS(ME)^2 interval file."""
    if dataset == "ME2":
        table = read_intervals("casme_sq", os.environ["MICRONBERT_CASME_SQ_ROOT"])
        table = table[table["type"] == kind]
        return intervals(*zip(table["video"], table["onset"], table["offset"], table["type"], strict=True))
    truth = []
    for line in (root / "MDMD_results" / "dataset_new" / "data" / "SAMM_MEGC_Sets" / "all_Info.txt").read_text().split(
            "\n"):
        if line.strip():
            subject, video, cls, onset, _apex, offset = line.split()
            if cls == f"{kind}-expression":
                truth.append((f"{subject}_{video}", int(float(onset)), int(float(offset)), kind))
    return intervals(*truth)


def _baseline_predictions(root: Path, dataset: str, kind: str) -> pd.DataFrame:
    """The baseline's p = 1 predictions of one class, with its length filters."""
    shortest, longest = MEGC2020_LENGTHS[(dataset, kind)]
    predicted = []
    for path in sorted((root / "MDMD_results" / "results_API" / f"{dataset}_{kind}_txtClips" / "p1").glob("*.txt")):
        for line in path.read_text().splitlines():
            onset, offset = (int(value) for value in line.split()[:2])
            if offset - onset + 1 >= shortest and (longest is None or offset - onset + 1 <= longest):
                predicted.append((path.stem, onset, offset, kind))
    return intervals(*predicted)


MEGC2020_INPUTS = {
    "MICRONBERT_MEGC2020_BASELINE": "a copy of the MEGC2020 spotting baseline repository, the folder holding "
                                    "MDMD_results (third-party, not shipped)",
    "MICRONBERT_CASME_SQ_ROOT": "the CAS(ME)^2 annotation sheet or its folder",
}


def _megc2020_inputs(dataset: str) -> list[str]:
    needed = ["MICRONBERT_MEGC2020_BASELINE"] + (["MICRONBERT_CASME_SQ_ROOT"] if dataset == "ME2" else [])
    return [f"{name} to {MEGC2020_INPUTS[name]}" for name in needed if name not in os.environ]


@pytest.mark.parametrize("dataset, kind", list(MEGC2020_FIXTURE))
def test_megc2020_baseline_counts_from_its_prediction_files(dataset: str, kind: str) -> None:
    missing = _megc2020_inputs(dataset)
    if missing:
        pytest.skip(f"set {'; '.join(missing)}")
    root = Path(os.environ["MICRONBERT_MEGC2020_BASELINE"])
    predicted, truth = _baseline_predictions(root, dataset, kind), _baseline_truth(root, dataset, kind)
    n_pred, n_true, tp_megc, tp_strict = MEGC2020_FIXTURE[(dataset, kind)]
    megc = spotting_scores(predicted, truth, "megc2020")[kind]
    assert (megc.n_pred, megc.n_true, megc.tp) == (n_pred, n_true, tp_megc)
    assert spotting_scores(predicted, truth, "one-to-one")[kind].tp == tp_strict


# --- STRS ------------------------------------------------------------------------------------------------------

STR_COLUMNS = ("subject", "video", "onset", "offset", "emotion")


def str_table(*rows: tuple[object, ...]) -> pd.DataFrame:
    return intervals(*rows, columns=STR_COLUMNS)


def test_strs_of_the_reference_example_is_one_fifth() -> None:
    # STRS-Metric README example: IoUs 26/76, 31/71, 51/76, 46/76, 71/111 -> spotting TP 3, FP 2, FN 2, F1 0.6;
    # TP pairs others->others and happiness->repression twice over {happiness, others, repression}: P = R = (0, 1, 0)
    predicted = str_table((1, "EP02_01f", 10, 70, "happiness"), (1, "EP03_02", 100, 170, "others"),
                          (1, "EP04_02", 0, 70, "others"), (2, "EP01_11f", 20, 90, "happiness"),
                          (2, "EP02_04f", 70, 140, "happiness"))
    truth = str_table((1, "EP02_01f", 45, 85, "happiness"), (1, "EP03_02", 130, 160, "others"),
                      (1, "EP04_02", 20, 75, "others"), (2, "EP01_11f", 45, 95, "repression"),
                      (2, "EP02_04f", 30, 140, "repression"))
    for rule in ("strs", "one-to-one"):
        result = strs(predicted, truth, rule=rule)
        assert (result.tp, result.fp, result.fn) == (3, 2, 2)
        assert result.spotting_f1 == pytest.approx(0.6)
        assert result.analysis_f1 == pytest.approx(1 / 3) and result.uf1 == pytest.approx(1 / 3)
        assert result.strs == pytest.approx(0.2)
        assert [(e.emotion, e.tp, e.fp, e.fn) for e in result.emotions] == [
            ("happiness", 0, 2, 0), ("others", 1, 0, 0), ("repression", 0, 0, 2)]


def test_strs_reference_claims_every_free_gt_in_prediction_order() -> None:
    truth = str_table(("s1", "v", 1, 10, "happiness"), ("s1", "v", 2, 10, "surprise"))
    predicted = str_table(("s1", "v", 1, 10, "happiness"), ("s1", "v", 1, 10, "surprise"))
    reference = strs(predicted, truth, rule="strs")
    assert (reference.tp, reference.fp, reference.fn) == (2, 1, 0)  # P1 claims both; P2 finds them taken
    strict = strs(predicted, truth, rule="one-to-one")
    assert (strict.tp, strict.fp, strict.fn) == (2, 0, 0)


def test_strs_reference_skips_silent_subjects_and_gt_less_videos() -> None:
    truth = str_table(("s1", "v", 1, 10, "happiness"), ("s2", "w", 1, 10, "happiness"))
    predicted = str_table(("s1", "v", 1, 10, "happiness"), ("s1", "x", 1, 10, "happiness"))
    reference = strs(predicted, truth, rule="strs")
    assert (reference.tp, reference.fp, reference.fn) == (1, 0, 0)  # s2 has no prediction; video x has no GT
    strict = strs(predicted, truth, rule="one-to-one")
    assert (strict.tp, strict.fp, strict.fn) == (1, 1, 1)


def test_strs_reference_zeroes_an_emotion_whose_labels_never_vary() -> None:
    truth = str_table(("s1", "v", 1, 10, "happiness"), ("s1", "v", 50, 60, "happiness"))
    predicted = str_table(("s1", "v", 1, 10, "Happiness"), ("s1", "v", 50, 60, "happiness"))
    reference = strs(predicted, truth, rule="strs")
    assert reference.spotting_f1 == 1.0 and reference.analysis_f1 == 0.0 and reference.strs == 0.0
    strict = strs(predicted, truth, rule="one-to-one")
    assert strict.analysis_f1 == 1.0 and strict.strs == 1.0


def test_strs_emotion_classes_and_missing_subjects() -> None:
    truth = str_table(("s1", "v", 1, 10, "happiness"), ("s1", "v", 50, 60, "others"), ("s1", "v", 90, 99, "surprise"))
    predicted = str_table(("s1", "v", 1, 10, "happiness"), ("s1", "v", 50, 60, "happiness"),
                          ("s1", "v", 90, 99, "surprise")).drop(columns="subject")
    result = strs(predicted, truth, emotions=["Happiness", "surprise"], rule="one-to-one")
    assert [e.emotion for e in result.emotions] == ["happiness", "surprise"]
    assert result.tp == 3 and result.analysis_precision == 1.0 and result.analysis_recall == 1.0
    with pytest.raises(ValueError, match="emotion is missing"):
        strs(predicted, truth.assign(emotion=[None, "others", "surprise"]))
    with pytest.raises(ValueError, match="unknown STRS rule"):
        strs(predicted, truth, rule="megc2020")


def test_strs_arithmetic_reproduces_the_megc2025_baseline_rows() -> None:
    # MEGC2025 baseline: SAMM TP 6 FP 217 FN 202 (F1 0.0278), CAS(ME)^3 TP 3 FP 115 FN 34 (F1 0.0387), analysis F1
    # 0.2222 on both, STRS 0.0062 and 0.0086. Three emotions, one with P = R = 2/3: mean P = mean R = 2/9.
    emotions = (EmotionCounts("negative", 2, 1, 1), EmotionCounts("positive", 0, 0, 0),
                EmotionCounts("surprise", 0, 0, 0))
    for (tp, fp, fn), f1, score in (((6, 217, 202), 0.0278, 0.0062), ((3, 115, 34), 0.0387, 0.0086)):
        result = StrsResult(tp, fp, fn, emotions)
        assert round(result.spotting_f1, 4) == f1 and round(result.analysis_f1, 4) == 0.2222
        assert round(result.strs, 4) == score
        assert result.as_dict()["emotion/negative/f1"] == pytest.approx(2 / 3)
