"""Spot-then-recognise (STR, MEGC2024/2025; docs/SPOTTING.md): the emotion of every spotted
micro-expression, predicted by a recognition method trained leave-one-subject-out on the annotated micro-expressions,
then scored with STRS (spotting F1 × analysis F1, :func:`micronbert.spotting.strs`).

For each dataset, one sample table (``micronbert.data.table``) holds two kinds of rows pointing into the long videos'
frame folders: the annotated micro-expressions of every subject (onset, apex, the emotion's class index as label) and
the spotted micro-expression intervals (onset and apex = the spotted onset and peak). The method reads all rows once
and prepares once; then, for each subject with spotted micro-expressions, it is fitted on the annotated rows of the
OTHER subjects only and predicts the subject's spotted rows. Nothing is chosen on the held-out subject: the classes
come from the annotations (or the caller's mapping), the training rows exclude the subject, and a spotted row's label
is a placeholder that no fit ever receives. Methods that adapt to the unlabelled test samples (``transductive``) are
refused, since they would read the held-out subject's samples while fitting.

Emotion classes: the emotions of the annotated micro-expressions (lower case), or ``emotions``, a mapping from
annotated emotion to class (e.g. MEGC2024's three classes, ``{"negative": "negative", "positive": "positive",
"surprise": "surprise"}``); an annotated emotion the mapping leaves out is no class: its micro-expressions are not
trained on and their spotted pairs are left out of the analysis (they still count in spotting). A spotted interval
whose frames cannot be read gets the emotion ``unrecognised`` (never a class: wrong for every emotion), a GT
micro-expression without an emotion ``unlabelled``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from micronbert.data.frames import frame_number, list_frames
from micronbert.data.table import make_table, validate_table
from micronbert.evaluation.methods import Method, get_method
from micronbert.spotting.intervals import validate_intervals
from micronbert.spotting.metric import STRS_RULES, StrsResult, strs
from micronbert.train.finetune import FinetuneConfig

UNRECOGNISED = "unrecognised"
UNLABELLED = "unlabelled"
PLACEHOLDER_LABEL = 0
STR_COLUMNS: tuple[str, ...] = ("dataset", "subject", "video", "onset", "apex", "offset", "type", "score", "emotion")

MethodFactory = Callable[[FinetuneConfig, int], Method]


@dataclass(frozen=True)
class StrFold:
    """One held-out subject: which annotated rows trained the method (``train_rows``, rows of the sample table) and
    which spotted rows it predicted (``test_rows``)."""

    dataset: str
    subject: str
    train_rows: tuple[int, ...]
    test_rows: tuple[int, ...]
    train_subjects: tuple[str, ...]


@dataclass
class StrEvaluation:
    """What spot-then-recognise gave: the spotted micro-expressions with their predicted ``emotion``
    (``STR_COLUMNS``), STRS per dataset and rule, each dataset's ``classes``, the ``folds``, the sample ``tables``
    the method read (per dataset), and the rows it skipped with the reason."""

    predictions: pd.DataFrame
    scores: dict[str, dict[str, StrsResult]]
    classes: dict[str, list[str]]
    folds: list[StrFold] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def scores_table(self) -> pd.DataFrame:
        """One row per dataset and rule: counts, spotting and analysis P/R/F1, UF1 and STRS."""
        rows = [{"dataset": name, "rule": rule, **{key: value for key, value in result.as_dict().items()
                                                   if not key.startswith("emotion/")}}
                for name, by_rule in self.scores.items() for rule, result in by_rule.items()]
        return pd.DataFrame(rows)


def str_classes(truth: pd.DataFrame, emotions: Mapping[str, str] | None = None) -> list[str]:
    """The emotion classes of spot-then-recognise on ``truth``: the values of ``emotions`` when given, else the
    emotions of truth's micro-expressions (lower case), sorted; empty when truth's micro-expressions have none."""
    if emotions:
        return sorted({_lower(value) for value in emotions.values()})
    micro = truth[truth["type"] == "micro"] if "type" in truth.columns else truth.iloc[:0]
    if "emotion" not in micro.columns:
        return []
    return sorted({_lower(value) for value in micro["emotion"] if not _missing(value)})


def spot_then_recognise(spotted: pd.DataFrame, truth: pd.DataFrame, folders: Mapping[str, str | Path],
                        method: str | MethodFactory, config: FinetuneConfig | None = None,
                        emotions: Mapping[str, str] | None = None, rules: Sequence[str] = STRS_RULES,
                        progress: bool = False) -> StrEvaluation:
    """Predict the emotion of every spotted micro-expression and score STRS, per dataset (module docstring).

    spotted: intervals with ``video``, ``onset``, ``apex``, ``offset``, ``type`` and ``subject`` (``spot_loso``
    output; only ``micro`` rows are recognised), optionally ``dataset`` and ``score``. truth: the annotated intervals
    (``read_intervals``: ``dataset``, ``video``, ``subject``, ``type``, ``onset``, ``apex``, ``offset``,
    ``emotion``, ``fps``). folders: the frame folder of each video (``video_folders``). method: a registered
    recognition method name or a factory ``(config, num_classes) -> Method``; config: its FinetuneConfig.
    Raises ValueError when a dataset's micro-expressions have fewer than two emotion classes, for a transductive
    method, or for a spotted row whose video or subject is unknown.
    """
    config = config if config is not None else FinetuneConfig()
    checked_truth = _checked_truth(truth)
    spotted = _checked_spotted(spotted, checked_truth)
    result = StrEvaluation(pd.DataFrame(columns=list(STR_COLUMNS)), {}, {})
    tables = []
    for name in dict.fromkeys(checked_truth["dataset"]):
        dataset_truth = checked_truth[checked_truth["dataset"] == name]
        dataset_spotted = spotted[spotted["dataset"] == name]
        classes = str_classes(dataset_truth, emotions)
        if len(classes) < 2:
            raise ValueError(f"{name}: spot-then-recognise needs at least two emotion classes among the annotated "
                             f"micro-expressions, got {classes}")
        predictions = _recognise_dataset(name, dataset_spotted, dataset_truth, folders, classes, method, config,
                                         emotions, progress, result)
        reference = _str_truth(dataset_truth, emotions)
        result.classes[name] = classes
        result.scores[name] = {rule: strs(predictions, reference, classes, rule=rule) for rule in rules}
        tables.append(predictions)
    result.predictions = pd.concat(tables, ignore_index=True) if tables else result.predictions
    return result


# --- inputs ------------------------------------------------------------------------------------------------------


def _lower(value: object) -> str:
    return str(value).strip().lower()


def _missing(value: object) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _checked_truth(truth: pd.DataFrame) -> pd.DataFrame:
    checked = validate_intervals(truth, "truth", ("dataset", "video", "subject", "type", "onset", "offset"))
    checked = checked[checked["type"] == "micro"].copy()
    for name in ("apex", "emotion", "fps"):
        if name not in checked.columns:
            checked[name] = pd.NA
    checked["subject"] = checked["subject"].map(str)
    shared = checked.groupby("video")["dataset"].nunique()
    if (shared > 1).any():
        raise ValueError(f"truth: videos {shared[shared > 1].index[:5].tolist()} appear in several datasets")
    return checked.reset_index(drop=True)


def _checked_spotted(spotted: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    checked = validate_intervals(spotted, "spotted", ("video", "subject", "type", "onset", "offset"))
    checked = checked[checked["type"] == "micro"].copy()
    checked["apex"] = (pd.to_numeric(checked["apex"], errors="coerce") if "apex" in checked.columns
                       else pd.Series(np.nan, index=checked.index))
    middle = (checked["onset"] + checked["offset"]) // 2
    checked["apex"] = checked["apex"].fillna(middle).clip(checked["onset"], checked["offset"]).astype("int64")
    checked["subject"] = checked["subject"].map(str)
    if "score" not in checked.columns:
        checked["score"] = np.nan
    if "dataset" not in checked.columns:
        owners = dict(zip(truth["video"], truth["dataset"]))
        unknown = sorted(set(checked["video"]) - set(owners))
        if unknown and truth["dataset"].nunique() > 1:
            raise ValueError(f"spotted: no dataset column and videos {unknown[:5]} have no micro-expression in truth "
                             "to tell their dataset")
        single = truth["dataset"].iloc[0] if len(truth) else ""
        checked["dataset"] = checked["video"].map(lambda video: owners.get(video, single))
    return checked.reset_index(drop=True)


def _str_truth(truth: pd.DataFrame, emotions: Mapping[str, str] | None) -> pd.DataFrame:
    """Truth's micro-expressions with emotions mapped to classes (``UNLABELLED`` where missing)."""
    reference = truth[["dataset", "subject", "video", "onset", "offset"]].copy()
    reference["emotion"] = [_class_of(value, emotions) or UNLABELLED for value in truth["emotion"]]
    return reference


def _class_of(emotion: object, emotions: Mapping[str, str] | None) -> str | None:
    """The class of an annotated emotion: itself (lower case), or its mapping; None when missing or unmapped."""
    if _missing(emotion):
        return None
    if not emotions:
        return _lower(emotion)
    mapping = {_lower(key): _lower(value) for key, value in emotions.items()}
    return mapping.get(_lower(emotion))


# --- the sample table --------------------------------------------------------------------------------------------


class _FrameIndex:
    """The frame files of each video folder, listed once."""

    def __init__(self, folders: Mapping[str, str | Path]) -> None:
        self.folders = {video: Path(folder) for video, folder in folders.items()}
        self._numbers: dict[str, dict[int, str]] = {}

    def numbers(self, video: str) -> dict[int, str]:
        if video not in self.folders:
            raise ValueError(f"video {video}: no frame folder given")
        if video not in self._numbers:
            self._numbers[video] = {frame_number(path): str(path) for path in list_frames(self.folders[video])}
        return self._numbers[video]

    def frames(self, video: str, onset: int, offset: int) -> list[str]:
        numbers = self.numbers(video)
        return [numbers[n] for n in sorted(numbers) if onset <= n <= offset]

    def nearest(self, video: str, number: int, onset: int, offset: int) -> int | None:
        """``number`` when its file exists, else the closest existing frame in [onset, offset] (None: none)."""
        numbers = [n for n in self.numbers(video) if onset <= n <= offset]
        return min(numbers, key=lambda n: (abs(n - number), n)) if numbers else None


def _row(name: str, subject: str, clip: str, frames: list[str], onset: int, apex: int, offset: int, fps: object,
         emotion: str | None, label: int, apex_source: str) -> dict[str, Any]:
    return {"dataset": name, "subject": f"{name}/{subject}", "clip": clip, "frames": frames, "onset": onset,
            "apex": apex, "offset": offset, "fps": None if _missing(fps) else float(fps), "emotion": emotion,
            "label": label, "apex_source": apex_source}


def _annotated_rows(name: str, truth: pd.DataFrame, index: _FrameIndex, classes: list[str],
                    emotions: Mapping[str, str] | None, skipped: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Training rows: annotated micro-expressions whose emotion is a class and whose frames are found."""
    rows = []
    for item in truth.itertuples(index=False):
        where = f"{name} {item.video} annotated @{item.onset}"
        emotion = _class_of(item.emotion, emotions)
        if emotion not in classes:
            skipped.append((where, f"emotion {item.emotion!r} is not one of the classes {classes}"))
            continue
        if item.video not in index.folders:
            skipped.append((where, "the video has no frame folder"))
            continue
        apex = int(item.apex) if not _missing(item.apex) else (item.onset + item.offset) // 2
        frames = index.frames(item.video, item.onset, item.offset)
        if not frames:
            skipped.append((where, f"no frame file in [{item.onset}, {item.offset}]"))
            continue
        source = "midpoint" if _missing(item.apex) or getattr(item, "apex_source", None) == "midpoint" \
            else "annotated"
        rows.append(_row(name, item.subject, item.video, frames, item.onset, apex, item.offset, item.fps, emotion,
                         classes.index(emotion), source))
    return rows


def _spotted_rows(name: str, spotted: pd.DataFrame, index: _FrameIndex, fps: object) -> list[dict[str, Any] | None]:
    """Test rows: one per spotted micro interval (None where no frame of it can be read). The label is a placeholder
    that the sample table's format requires; no fit ever receives a spotted row, so it is never used."""
    rows: list[dict[str, Any] | None] = []
    for number, item in enumerate(spotted.itertuples(index=False)):
        onset = index.nearest(item.video, item.onset, item.onset, item.offset)
        apex = index.nearest(item.video, item.apex, item.onset, item.offset)
        if onset is None or apex is None:
            rows.append(None)
            continue
        onset, apex = min(onset, apex), max(onset, apex)
        frames = index.frames(item.video, onset, item.offset)
        rows.append(_row(name, item.subject, f"{item.video} spotted {number}", frames, onset, apex, item.offset,
                         fps, None, PLACEHOLDER_LABEL, "estimated"))
    return rows


# --- one dataset -------------------------------------------------------------------------------------------------


def _recognise_dataset(name: str, spotted: pd.DataFrame, truth: pd.DataFrame, folders: Mapping[str, str | Path],
                       classes: list[str], method: str | MethodFactory, config: FinetuneConfig,
                       emotions: Mapping[str, str] | None, progress: bool, result: StrEvaluation) -> pd.DataFrame:
    index = _FrameIndex(folders)
    unknown = sorted(set(spotted["video"]) - set(index.folders))
    if unknown:
        raise ValueError(f"{name}: spotted videos {unknown[:5]} have no frame folder")
    fps = truth["fps"].dropna().iloc[0] if truth["fps"].notna().any() else None
    annotated = _annotated_rows(name, truth, index, classes, emotions, result.skipped)
    spotted_rows = _spotted_rows(name, spotted, index, fps)
    table = make_table(annotated + [row for row in spotted_rows if row is not None])
    validate_table(table)
    result.tables[name] = table
    emotion = np.full(len(spotted), UNRECOGNISED, dtype=object)
    if len(table):
        runner = _method(method, config, len(classes))
        samples = runner.read(table, skip_bad=True, progress=progress)
        result.skipped += list(samples.skipped)
        result.warnings += [f"{name}: {warning}" for warning in runner.warnings()]
        runner.prepare(samples)
        positions = _Positions(table, samples.rows, len(annotated), _spotted_table_rows(spotted_rows, len(annotated)))
        subjects = spotted["subject"].to_numpy()
        for subject in tqdm(list(dict.fromkeys(subjects)), desc=f"{name} STR folds", unit="subject",
                            disable=not progress):
            train, (test_spotted, test) = positions.train(f"{name}/{subject}"), positions.test(subjects == subject)
            if not len(train) or not len(test):
                result.skipped.append((f"{name}/{subject}", "no annotated micro-expression of other subjects to "
                                       "train on" if not len(train) else "no readable spotted micro-expression"))
                continue
            runner.fit(train)
            emotion[test_spotted] = [classes[int(k)] for k in runner.predict_proba(test).argmax(axis=1)]
            result.folds.append(positions.fold(name, subject, train, test))
    predictions = spotted.assign(dataset=name, emotion=emotion)
    return predictions[list(STR_COLUMNS)].reset_index(drop=True)


class _Positions:
    """Where the method's samples are: sample position of each table row it read, the annotated rows (the first
    ``n_annotated`` of the table) and the table row of each spotted interval (None: not in the table)."""

    def __init__(self, table: pd.DataFrame, rows: np.ndarray, n_annotated: int,
                 spotted_rows: Sequence[int | None]) -> None:
        self.rows = np.asarray(rows, dtype=int)
        self.subjects = table["subject"].to_numpy()
        self.position = {int(row): i for i, row in enumerate(self.rows)}
        self.annotated = np.asarray([self.position[r] for r in range(n_annotated) if r in self.position], dtype=int)
        self.spotted_rows = spotted_rows

    def train(self, held_out: str) -> np.ndarray:
        """Positions of the annotated rows of every subject but ``held_out`` (namespaced)."""
        if not len(self.annotated):
            return self.annotated
        return self.annotated[self.subjects[self.rows[self.annotated]] != held_out]

    def test(self, chosen: np.ndarray) -> tuple[list[int], np.ndarray]:
        """The chosen spotted intervals that the method read (their indices) and their positions."""
        read = [int(i) for i in np.flatnonzero(chosen)
                if self.spotted_rows[i] is not None and self.spotted_rows[i] in self.position]
        return read, np.asarray([self.position[self.spotted_rows[i]] for i in read], dtype=int)

    def fold(self, name: str, subject: str, train: np.ndarray, test: np.ndarray) -> StrFold:
        """The fold's record, in table rows."""
        trained = self.subjects[self.rows[train]]
        return StrFold(name, subject, tuple(int(r) for r in self.rows[train]), tuple(int(r) for r in self.rows[test]),
                       tuple(sorted({value.split("/", 1)[1] for value in trained})))


def _spotted_table_rows(rows: Sequence[dict[str, Any] | None], offset: int) -> list[int | None]:
    """The sample-table row of each spotted interval (annotated rows come first), None where it has none."""
    table_rows: list[int | None] = []
    next_row = offset
    for row in rows:
        table_rows.append(None if row is None else next_row)
        next_row += row is not None
    return table_rows


def _method(method: str | MethodFactory, config: FinetuneConfig, num_classes: int) -> Method:
    runner = get_method(method, config, num_classes) if isinstance(method, str) else method(config, num_classes)
    if runner.transductive:
        raise ValueError(f"method {runner.name} adapts to the unlabelled test samples while fitting; spot-then-"
                         "recognise never lets a fit read the held-out subject's samples")
    runner.check_protocol("loso")
    return runner
