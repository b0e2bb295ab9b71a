"""The MEGC spotting metric and the spot-then-recognise score (docs/SPOTTING.md).

An interval is the inclusive set of frames ``[onset, offset]``; IoU = |A ∩ B| / |A ∪ B| on those sets. A prediction
can hit a ground-truth (GT) interval of its own class (micro with micro, macro with macro; other types, such as
CAS(ME)^3 blinks, are left out) in the same video when IoU >= 0.5. Counts are pooled over the videos of a dataset
(the dataset is "one long video"): precision = TP / N_pred, recall = TP / M_gt, F1 = 2PR / (P + R), each 0 when
its denominator is 0; ``overall`` pools the micro and macro counts, and several datasets are pooled the same way
(MEGC2022). Predictions in videos without GT count in N_pred.

The two counting rules, side by side:

=====================  ==========================================  ==============================================
                       ``megc2020`` (the MEGC2020 scorer)          ``one-to-one``
=====================  ==========================================  ==============================================
TP                     GT intervals hit by at least one            size of a maximum one-to-one matching between
                       prediction                                  predictions and GT intervals (pairs with
                                                                   IoU >= threshold)
one prediction, two    validates both (TP 2)                       matches one (TP 1; the other GT is a miss)
GT intervals
two predictions, one   one TP; the second prediction only adds     one TP, one false positive
GT interval            to N_pred
IoU                    as the scorer computes it: intersection     exact inclusive-frame IoU
                       ``max(0, min(ends) - max(starts)) + 1``
                       (1 for disjoint intervals, harmless at
                       0.5), and 0 when either interval has
                       ``offset <= onset`` (one-frame intervals
                       never match)
precision              TP / N_pred (can exceed 1 only when         TP / N_pred (never above 1)
                       predictions validate several GTs each)
=====================  ==========================================  ==============================================

On the MEGC2020 baseline's CAS(ME)^2 macro predictions the two rules give TP 109 and 104 (docs/SPOTTING.md).
The maximum matching is found by augmenting paths, GT intervals in table order, each trying its candidates by
decreasing IoU; unlike greedy matching by IoU it never loses a pair that a rearrangement could keep.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from micronbert.spotting.intervals import validate_intervals

RULES: tuple[str, ...] = ("megc2020", "one-to-one")
STRS_RULES: tuple[str, ...] = ("strs", "one-to-one")
SCORED_TYPES: tuple[str, ...] = ("micro", "macro")
POOLED = "pooled"
IOU_THRESHOLD = 0.5
LOG_RESULTS: tuple[str, ...] = ("TP", "FP", "FN")


@dataclass(frozen=True)
class SpottingCounts:
    """Pooled spotting counts and the scores computed from them."""

    tp: int
    n_pred: int
    n_true: int

    @property
    def precision(self) -> float:
        """TP / N_pred (0 without predictions)."""
        return self.tp / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self) -> float:
        """TP / M_gt (0 without GT intervals)."""
        return self.tp / self.n_true if self.n_true else 0.0

    @property
    def f1(self) -> float:
        """2PR / (P + R) (0 when both are 0)."""
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    def __add__(self, other: SpottingCounts) -> SpottingCounts:
        return SpottingCounts(self.tp + other.tp, self.n_pred + other.n_pred, self.n_true + other.n_true)

    def as_dict(self) -> dict[str, float]:
        """``tp``, ``n_pred``, ``n_true``, ``precision``, ``recall``, ``f1``."""
        return {"tp": self.tp, "n_pred": self.n_pred, "n_true": self.n_true, "precision": self.precision,
                "recall": self.recall, "f1": self.f1}


def interval_iou(onsets_a: Sequence[int], offsets_a: Sequence[int], onsets_b: Sequence[int],
                 offsets_b: Sequence[int]) -> np.ndarray:
    """IoU of every interval of A (rows) with every interval of B (columns), on inclusive frame sets."""
    a_on, a_off = np.asarray(onsets_a, dtype=np.int64)[:, None], np.asarray(offsets_a, dtype=np.int64)[:, None]
    b_on, b_off = np.asarray(onsets_b, dtype=np.int64)[None, :], np.asarray(offsets_b, dtype=np.int64)[None, :]
    inter = np.clip(np.minimum(a_off, b_off) - np.maximum(a_on, b_on) + 1, 0, None)
    union = (a_off - a_on + 1) + (b_off - b_on + 1) - inter
    return inter / union


def megc2020_iou(onsets_a: Sequence[int], offsets_a: Sequence[int], onsets_b: Sequence[int],
                 offsets_b: Sequence[int]) -> np.ndarray:
    """IoU as the MEGC2020 scorer computes it: intersection ``max(0, min(ends) - max(starts)) + 1`` and 0 for any
    pair where an interval has ``offset <= onset``."""
    a_on, a_off = np.asarray(onsets_a, dtype=np.int64)[:, None], np.asarray(offsets_a, dtype=np.int64)[:, None]
    b_on, b_off = np.asarray(onsets_b, dtype=np.int64)[None, :], np.asarray(offsets_b, dtype=np.int64)[None, :]
    inter = np.clip(np.minimum(a_off, b_off) - np.maximum(a_on, b_on), 0, None) + 1
    union = (a_off - a_on + 1) + (b_off - b_on + 1) - inter
    degenerate = (a_off <= a_on) | (b_off <= b_on) | (union <= 0)
    return np.where(degenerate, 0.0, inter / np.where(union > 0, union, 1))


def maximum_matching(hits: np.ndarray, iou: np.ndarray) -> dict[int, int]:
    """A maximum one-to-one matching on the boolean matrix ``hits`` (predictions x GT): GT column -> prediction row.

    Augmenting paths, GT columns in order, each trying its candidate predictions by decreasing ``iou``.
    """
    owner: dict[int, int] = {}  # prediction -> GT
    candidates = [sorted(np.flatnonzero(hits[:, g]), key=lambda p, g=g: (-iou[p, g], p)) for g in range(hits.shape[1])]

    def augment(gt: int, seen: set[int]) -> bool:
        for prediction in candidates[gt]:
            if prediction in seen:
                continue
            seen.add(prediction)
            if prediction not in owner or augment(owner[prediction], seen):
                owner[prediction] = gt
                return True
        return False

    for gt in range(hits.shape[1]):
        augment(gt, set())
    return {gt: prediction for prediction, gt in owner.items()}


def spotting_scores(
    predicted: pd.DataFrame, truth: pd.DataFrame, rule: str = "megc2020", threshold: float = IOU_THRESHOLD
) -> dict[str, SpottingCounts]:
    """Spotting counts of one dataset: ``{"micro", "macro", "overall"}`` -> SpottingCounts.

    predicted, truth: tables with ``video``, ``onset``, ``offset``, ``type`` (``micro``/``macro``; ``blink`` rows are
    left out); ``dataset`` columns, when both tables have one, must name one and the same dataset (use
    ``spotting_scores_by_dataset`` for several). rule: ``megc2020`` or ``one-to-one`` (module docstring).
    """
    predicted, truth = _checked(predicted, truth, rule, threshold)
    datasets = {name for table in (predicted, truth) if "dataset" in table.columns for name in table["dataset"]}
    if len(datasets) > 1:
        raise ValueError(f"the tables hold several datasets {sorted(datasets)}; use spotting_scores_by_dataset")
    return _scores(predicted, truth, rule, threshold)


def spotting_scores_by_dataset(
    predicted: pd.DataFrame, truth: pd.DataFrame, rule: str = "megc2020", threshold: float = IOU_THRESHOLD
) -> dict[str, dict[str, SpottingCounts]]:
    """Spotting counts per dataset and pooled over all of them (MEGC2022): ``{dataset | "pooled": {"micro", "macro",
    "overall"}}``.

    truth needs a ``dataset`` column; predicted either has one or gets the dataset of its video from truth
    (ValueError when a video is unknown to truth or appears in several of its datasets).
    """
    predicted, truth = _checked(predicted, truth, rule, threshold)
    if "dataset" not in truth.columns:
        raise ValueError("truth: a dataset column is needed to score by dataset")
    if "dataset" not in predicted.columns:
        predicted = predicted.assign(dataset=_datasets_of_videos(predicted, truth))
    names = list(dict.fromkeys([*truth["dataset"], *predicted["dataset"]]))
    if POOLED in names:
        raise ValueError(f"a dataset may not be called {POOLED!r}")
    result = {name: _scores(predicted[predicted["dataset"] == name], truth[truth["dataset"] == name], rule, threshold)
              for name in names}
    result[POOLED] = {kind: sum((scores[kind] for scores in result.values()), SpottingCounts(0, 0, 0))
                      for kind in (*SCORED_TYPES, "overall")}
    return result


def spotting_log(
    predicted: pd.DataFrame, truth: pd.DataFrame, rule: str = "megc2020", threshold: float = IOU_THRESHOLD
) -> pd.DataFrame:
    """The per-item lines of a MEGC2019/2020 log: ``video, type, gt_onset, gt_offset, pred_onset, pred_offset,
    result`` (``TP``/``FP``/``FN``; missing frames are <NA>), sorted inside each video by predicted onset (GT onset
    for misses).

    ``megc2020`` pairs as the MEGC2020 baseline's log does: each prediction with the first GT it hits (else FP), then
    each GT with the first prediction hitting it unless that pair is already listed (else FN), so a prediction that
    validates two GTs appears on two TP lines. ``one-to-one`` lists the matched pairs, unmatched predictions and
    unmatched GT intervals.
    """
    predicted, truth = _checked(predicted, truth, rule, threshold)
    by_video: dict[str, list[tuple[str, _Ends, _Ends, str]]] = {}
    for video, kind, pred, true in _groups(predicted, truth):
        by_video.setdefault(video, []).extend((kind, *item) for item in _log_items(pred, true, rule, threshold))
    lines = []
    for video, items in by_video.items():
        items.sort(key=lambda item: item[2][0] if item[3] != "FN" else item[1][0])
        lines += [(video, kind, *gt, *guess, result) for kind, gt, guess, result in items]
    columns = ["video", "type", "gt_onset", "gt_offset", "pred_onset", "pred_offset", "result"]
    return pd.DataFrame(lines, columns=columns).astype({name: "Int64" for name in columns[2:6]})


_Ends = tuple[int | None, int | None]
_NONE: _Ends = (None, None)


def _log_items(pred: pd.DataFrame, true: pd.DataFrame, rule: str,
               threshold: float) -> Iterator[tuple[_Ends, _Ends, str]]:
    """(GT ends, predicted ends, result) of one video and type."""
    guesses = list(zip(pred["onset"].tolist(), pred["offset"].tolist()))
    truths = list(zip(true["onset"].tolist(), true["offset"].tolist()))
    hits, iou = _hits(pred, true, rule, threshold)
    if rule == "one-to-one":
        matching = maximum_matching(hits, iou)
        matched = set(matching.values())
        yield from ((truths[g], guesses[p], "TP") for g, p in matching.items())
        yield from ((_NONE, guesses[p], "FP") for p in range(len(guesses)) if p not in matched)
        yield from ((truths[g], _NONE, "FN") for g in range(len(truths)) if g not in matching)
        return
    listed: list[tuple[_Ends, _Ends, str]] = []
    for p, guess in enumerate(guesses):
        first = np.flatnonzero(hits[p])
        listed.append((truths[first[0]], guess, "TP") if first.size else (_NONE, guess, "FP"))
    for g, gt in enumerate(truths):
        first = np.flatnonzero(hits[:, g])
        item = (gt, guesses[first[0]], "TP") if first.size else (gt, _NONE, "FN")
        if item[2] == "FN" or item not in listed:
            listed.append(item)
    yield from listed


def _checked(predicted: pd.DataFrame, truth: pd.DataFrame, rule: str,
             threshold: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    if rule not in RULES:
        raise ValueError(f"unknown spotting rule {rule!r}; choose one of {list(RULES)}")
    if not 0 < threshold <= 1:
        raise ValueError(f"IoU threshold must be in (0, 1], got {threshold!r}")
    return validate_intervals(predicted, "predicted"), validate_intervals(truth, "truth")


def _datasets_of_videos(predicted: pd.DataFrame, truth: pd.DataFrame) -> pd.Series:
    owners = truth.groupby("video")["dataset"].unique()
    shared = [video for video, names in owners.items() if len(names) > 1]
    unknown = sorted(set(predicted["video"]) - set(owners.index))
    if shared or unknown:
        raise ValueError("predicted has no dataset column and its videos cannot be assigned: "
                         + (f"videos in several datasets {shared[:5]} " if shared else "")
                         + (f"videos absent from truth {unknown[:5]}" if unknown else ""))
    return predicted["video"].map(lambda video: owners[video][0])


def _scores(predicted: pd.DataFrame, truth: pd.DataFrame, rule: str, threshold: float) -> dict[str, SpottingCounts]:
    tp = dict.fromkeys(SCORED_TYPES, 0)
    for _video, kind, pred, true in _groups(predicted, truth):
        hits, iou = _hits(pred, true, rule, threshold)
        tp[kind] += int(hits.any(axis=0).sum()) if rule == "megc2020" else len(maximum_matching(hits, iou))
    counts = {kind: SpottingCounts(tp[kind], int((predicted["type"] == kind).sum()), int((truth["type"] == kind).sum()))
              for kind in SCORED_TYPES}
    counts["overall"] = counts["micro"] + counts["macro"]
    return counts


def _groups(predicted: pd.DataFrame, truth: pd.DataFrame) -> Iterator[tuple[str, str, pd.DataFrame, pd.DataFrame]]:
    """(video, type, predictions, GT) for every scored type and every video with a prediction or a GT interval."""
    for kind in SCORED_TYPES:
        pred, true = predicted[predicted["type"] == kind], truth[truth["type"] == kind]
        pred_by_video = dict(list(pred.groupby("video", sort=False)))
        true_by_video = dict(list(true.groupby("video", sort=False)))
        for video in dict.fromkeys([*true_by_video, *pred_by_video]):
            yield (video, kind, pred_by_video.get(video, pred.iloc[:0]), true_by_video.get(video, true.iloc[:0]))


def _hits(pred: pd.DataFrame, true: pd.DataFrame, rule: str, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    measure = megc2020_iou if rule == "megc2020" else interval_iou
    iou = measure(pred["onset"], pred["offset"], true["onset"], true["offset"])
    return iou >= threshold, iou


# --- spot-then-recognise ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmotionCounts:
    """One-vs-rest counts of one emotion over the spotted TP pairs."""

    emotion: str
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        """TP / (TP + FP), 0 when no pair is predicted as this emotion."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """TP / (TP + FN), 0 when no pair is of this emotion."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """2PR / (P + R), 0 when both are 0."""
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


@dataclass(frozen=True)
class StrsResult:
    """Spotting counts (TP, FP, FN) and the per-emotion analysis counts of spot-then-recognise."""

    tp: int
    fp: int
    fn: int
    emotions: tuple[EmotionCounts, ...]

    @property
    def spotting_precision(self) -> float:
        """TP / (TP + FP)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def spotting_recall(self) -> float:
        """TP / (TP + FN)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def spotting_f1(self) -> float:
        """F1 of spotting."""
        total = self.spotting_precision + self.spotting_recall
        return 2 * self.spotting_precision * self.spotting_recall / total if total else 0.0

    @property
    def analysis_precision(self) -> float:
        """Mean of the per-emotion precisions."""
        return float(np.mean([item.precision for item in self.emotions])) if self.emotions else 0.0

    @property
    def analysis_recall(self) -> float:
        """Mean of the per-emotion recalls (the unweighted average recall, UAR)."""
        return float(np.mean([item.recall for item in self.emotions])) if self.emotions else 0.0

    @property
    def analysis_f1(self) -> float:
        """Harmonic mean of the mean precision and the mean recall (0 when both are 0); not UF1."""
        total = self.analysis_precision + self.analysis_recall
        return 2 * self.analysis_precision * self.analysis_recall / total if total else 0.0

    @property
    def uf1(self) -> float:
        """Mean of the per-emotion F1 scores."""
        return float(np.mean([item.f1 for item in self.emotions])) if self.emotions else 0.0

    @property
    def strs(self) -> float:
        """Spotting F1 x analysis F1."""
        return self.spotting_f1 * self.analysis_f1

    def as_dict(self) -> dict[str, float]:
        """The counts and scores as a flat mapping (``emotion/<name>/f1`` etc. for each emotion)."""
        scores: dict[str, float] = {"tp": self.tp, "fp": self.fp, "fn": self.fn}
        for name in ("spotting_precision", "spotting_recall", "spotting_f1", "analysis_precision", "analysis_recall",
                     "analysis_f1", "uf1", "strs"):
            scores[name] = getattr(self, name)
        for item in self.emotions:
            for key in ("precision", "recall", "f1"):
                scores[f"emotion/{item.emotion}/{key}"] = getattr(item, key)
        return scores


def strs(
    predicted: pd.DataFrame,
    truth: pd.DataFrame,
    emotions: Sequence[str] | None = None,
    rule: str = "strs",
    threshold: float = IOU_THRESHOLD,
) -> StrsResult:
    """Spot-then-recognise score (MEGC2024/2025; Liong, See & Chan 2023): STRS = spotting F1 x analysis F1.

    predicted, truth: tables with ``video``, ``onset``, ``offset``, ``emotion`` and ``subject`` (predicted may leave
    ``subject`` out when truth names each video's subject); ``type`` is not used, so filter the tables first (e.g.
    micro-expressions only). Emotions are compared in lower case. emotions: the classes of the analysis (default: all
    emotions of truth); TP pairs whose GT emotion is not one of them are left out of the analysis.

    Analysis: over the spotted TP pairs, one-vs-rest counts per emotion; precision and recall averaged over the
    emotions; analysis F1 = 2 P R / (P + R).

    rule ``strs`` reproduces the STRS-Metric reference script: per subject with at least one prediction, per video of
    that subject with GT, predictions in table order each claim every still unclaimed GT with IoU >= threshold (one
    prediction may claim two); a prediction claiming none is an FP, an unclaimed GT an FN; GT of subjects without any
    prediction is not counted and predictions in videos without GT are ignored; an emotion whose one-vs-rest labels
    take a single value over all pairs (all 0 or all 1, also none) gets TP = FP = FN = 0. rule ``one-to-one``: every
    GT counts, predictions in videos without GT are FPs, maximum one-to-one matching (as ``spotting_scores``), and
    per-emotion counts taken as they are.
    """
    if rule not in STRS_RULES:
        raise ValueError(f"unknown STRS rule {rule!r}; choose one of {list(STRS_RULES)}")
    if not 0 < threshold <= 1:
        raise ValueError(f"IoU threshold must be in (0, 1], got {threshold!r}")
    truth = _str_table(truth, "truth", ("subject",))
    predicted = _str_table(predicted, "predicted", ())
    predicted = predicted.assign(subject=_subjects(predicted, truth))
    pairs, fp, fn = (_reference_spotting if rule == "strs" else _one_to_one_spotting)(predicted, truth, threshold)
    classes = sorted({_emotion(e) for e in emotions}) if emotions is not None else sorted(set(truth["emotion"]))
    analysed = [(guess, actual) for guess, actual in pairs if actual in classes]
    counts = tuple(_emotion_counts(name, analysed, reference=rule == "strs") for name in classes)
    return StrsResult(len(pairs), fp, fn, counts)


def _emotion(value: object) -> str:
    return str(value).strip().lower()


def _str_table(table: pd.DataFrame, what: str, extra: Sequence[str]) -> pd.DataFrame:
    checked = validate_intervals(table, what, ("video", "onset", "offset", "emotion", *extra))
    missing = checked["emotion"].isna()
    if missing.any():
        raise ValueError(f"{what} row {missing[missing].index[0]}: emotion is missing ({int(missing.sum())} rows)")
    checked["emotion"] = checked["emotion"].map(_emotion)
    if "subject" in checked.columns:
        checked["subject"] = checked["subject"].map(lambda value: str(value).strip())
    return checked


def _subjects(predicted: pd.DataFrame, truth: pd.DataFrame) -> pd.Series:
    if "subject" in predicted.columns:
        return predicted["subject"]
    owners = truth.groupby("video")["subject"].unique()
    shared = [video for video, names in owners.items() if len(names) > 1]
    if shared:
        raise ValueError(f"predicted has no subject column and truth's videos {shared[:5]} belong to several subjects")
    return predicted["video"].map(lambda video: owners[video][0] if video in owners.index else "")


def _reference_spotting(predicted: pd.DataFrame, truth: pd.DataFrame,
                        threshold: float) -> tuple[list[tuple[str, str]], int, int]:
    pairs: list[tuple[str, str]] = []
    fp = fn = 0
    for subject in dict.fromkeys(predicted["subject"]):
        subject_truth = truth[truth["subject"] == subject]
        for video in dict.fromkeys(subject_truth["video"]):
            pred = predicted[(predicted["subject"] == subject) & (predicted["video"] == video)]
            true = subject_truth[subject_truth["video"] == video]
            hits = interval_iou(pred["onset"], pred["offset"], true["onset"], true["offset"]) >= threshold
            claimed = np.zeros(len(true), dtype=bool)
            for p, guess in enumerate(pred["emotion"]):
                new = hits[p] & ~claimed
                pairs += [(guess, actual) for actual in true["emotion"].to_numpy()[new]]
                claimed |= new
                fp += int(not new.any())
            fn += int((~claimed).sum())
    return pairs, fp, fn


def _one_to_one_spotting(predicted: pd.DataFrame, truth: pd.DataFrame,
                         threshold: float) -> tuple[list[tuple[str, str]], int, int]:
    pairs: list[tuple[str, str]] = []
    keys = dict.fromkeys([*zip(truth["subject"], truth["video"]), *zip(predicted["subject"], predicted["video"])])
    for subject, video in keys:
        pred = predicted[(predicted["subject"] == subject) & (predicted["video"] == video)]
        true = truth[(truth["subject"] == subject) & (truth["video"] == video)]
        iou = interval_iou(pred["onset"], pred["offset"], true["onset"], true["offset"])
        matching = maximum_matching(iou >= threshold, iou)
        pairs += [(pred["emotion"].iloc[p], true["emotion"].iloc[g]) for g, p in matching.items()]
    return pairs, len(predicted) - len(pairs), len(truth) - len(pairs)


def _emotion_counts(emotion: str, pairs: Sequence[tuple[str, str]], reference: bool) -> EmotionCounts:
    predicted_as = [guess == emotion for guess, _ in pairs]
    actually = [actual == emotion for _, actual in pairs]
    if reference and len(set(predicted_as) | set(actually)) < 2:
        return EmotionCounts(emotion, 0, 0, 0)
    both = sum(p and a for p, a in zip(predicted_as, actually))
    return EmotionCounts(emotion, both, sum(predicted_as) - both, sum(actually) - both)


def scores_table(scores: Mapping[str, Mapping[str, SpottingCounts]] | Mapping[str, SpottingCounts]) -> pd.DataFrame:
    """Spotting counts as a table: one row per class (and per dataset for ``spotting_scores_by_dataset`` output)."""
    rows = []
    for key, value in scores.items():
        if isinstance(value, SpottingCounts):
            rows.append({"type": key, **value.as_dict()})
        else:
            rows += [{"dataset": key, "type": kind, **counts.as_dict()} for kind, counts in value.items()]
    return pd.DataFrame(rows)
