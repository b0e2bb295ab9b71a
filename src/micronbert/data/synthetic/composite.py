"""A synthetic stand-in for the MEGC2019 composite: three synthetic CASME II-like datasets relabelled as
``smic``, ``casme2`` and ``samm``, so that ``evaluate(..., protocol="megc2019")`` reports UF1/UAR per dataset
exactly as on the real composite (docs/DATASETS.md §12), with no licensed data.

Each part is written by :func:`~micronbert.data.synthetic.write_synthetic_dataset` with its own seed, frame rate
and frame size, read back by the CASME II reader under the ``megc2019-3class`` scheme (happiness → positive,
surprise → surprise, disgust and repression → negative), and relabelled: its ``dataset`` becomes the part's name
and its subjects are renamed the way the source spells them (``smic/s01``, ``casme2/sub01``, ``samm/006``).

At full size (:data:`MEGC2019_PARTS`) the composite has the real one's shape: 68 subjects and 442 samples, SMIC
16 subjects / 164 samples (70 negative, 51 positive, 43 surprise) at 100 fps, CASME II 24 / 145 (88 / 32 / 25) at
200 fps, SAMM 28 / 133 (92 / 26 / 15) at 200 fps. To reach those class counts each part renders more clips than
it keeps (classes are dealt in a repeating pattern weighted by the counts), then keeps, class by class, the first
clips in an order that walks through the subjects clip by clip, so that every subject keeps samples.
:func:`quick_parts` gives a small composite for smoke tests.

    table = write_synthetic_composite("composite")            # writes composite/<part>/ and composite/table.csv
    table = read_synthetic_composite("composite")             # reads the table back
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from micronbert.data.datasets import get_scheme, load
from micronbert.data.table import load_table, save_table, validate_table

from .config import SynthConfig
from .writers import write_synthetic_dataset

SCHEME = "megc2019-3class"
CLASS_ORDER = ("negative", "positive", "surprise")  # the scheme's classes 0, 1, 2, also synthetic class names
SUBJECT_NAMES = {"smic": "s{:02d}", "casme2": "sub{:02d}", "samm": "{:03d}"}  # how each source spells subjects
PATTERN_LENGTH = 6
TABLE_NAME = "table.csv"


@dataclass(frozen=True)
class CompositePart:
    """One synthetic source dataset of the composite: its name (``smic``, ``casme2`` or ``samm``), subjects, the
    samples it keeps per class (negative, positive, surprise), frame rate, frame side in pixels and seed."""

    dataset: str
    subjects: int
    counts: tuple[int, int, int]
    fps: int
    size: int
    seed: int

    def __post_init__(self) -> None:
        if self.dataset not in SUBJECT_NAMES:
            raise ValueError(f"composite part {self.dataset!r}: the name must be one of {sorted(SUBJECT_NAMES)}")
        if self.subjects < 1 or len(self.counts) != len(CLASS_ORDER) or min(self.counts) < 1:
            raise ValueError(f"composite part {self.dataset}: needs >= 1 subject and >= 1 sample of each class "
                             f"{CLASS_ORDER}, got {self.subjects} subjects and counts {self.counts}")
        if sum(self.counts) < self.subjects:
            raise ValueError(f"composite part {self.dataset}: {sum(self.counts)} samples cannot give each of "
                             f"{self.subjects} subjects one")

    @property
    def samples(self) -> int:
        """The number of samples the part keeps."""
        return sum(self.counts)


MEGC2019_PARTS = (
    CompositePart("smic", 16, (70, 51, 43), fps=100, size=112, seed=1),
    CompositePart("casme2", 24, (88, 32, 25), fps=200, size=128, seed=2),
    CompositePart("samm", 28, (92, 26, 15), fps=200, size=144, seed=3),
)


def quick_parts(subjects: int = 4, clips: int = 4, size: int = 64) -> tuple[CompositePart, ...]:
    """A small composite: each of the three parts with ``subjects`` subjects and about ``clips`` samples each
    (the classes as balanced as the count allows), frames of ``size`` pixels."""
    total = subjects * clips
    if total < len(CLASS_ORDER):
        raise ValueError(f"a quick composite needs at least {len(CLASS_ORDER)} samples per part, got "
                         f"{subjects} subjects x {clips} clips")
    counts = tuple(total // 3 + (1 if index < total % 3 else 0) for index in range(len(CLASS_ORDER)))
    return tuple(CompositePart(part.dataset, subjects, counts, part.fps, size, part.seed) for part in MEGC2019_PARTS)


def class_pattern(counts: Sequence[int], length: int = PATTERN_LENGTH) -> tuple[str, ...]:
    """The synthetic classes dealt in turn, each about ``length × count / total`` times (at least once), spread
    through the pattern (largest share first at every step)."""
    total = sum(counts)
    shares = [max(1, round(length * count / total)) for count in counts]
    pattern: list[str] = []
    dealt = [0] * len(counts)
    for _ in range(sum(shares)):
        index = max(range(len(counts)), key=lambda i: (shares[i] - dealt[i]) / shares[i])
        dealt[index] += 1
        pattern.append(CLASS_ORDER[index])
    return tuple(pattern)


def clips_per_subject(part: CompositePart, pattern: Sequence[str]) -> int:
    """The fewest clips per subject for which the writer's class rotation (clip ``i`` of subject ``s`` takes
    ``pattern[(s - 1 + i) % len(pattern)]``) gives every class at least the part's count."""
    for clips in range(1, 100):
        dealt = [pattern[(subject + index) % len(pattern)] for subject in range(part.subjects)
                 for index in range(clips)]
        if all(dealt.count(name) >= count for name, count in zip(CLASS_ORDER, part.counts)):
            return clips
    raise ValueError(f"composite part {part.dataset}: {part.counts} samples over {part.subjects} subjects need more "
                     "than 99 clips per subject")


def write_synthetic_composite(out_dir: str | Path, parts: Sequence[CompositePart] = MEGC2019_PARTS, *,
                              duration_s: tuple[float, float] = (0.1, 0.5), nuisance_strength: float = 1.0,
                              workers: int = 1) -> pd.DataFrame:
    """Write every part under ``out_dir/<dataset>`` and the composite's sample table to ``out_dir/table.csv``;
    return the table (labels under ``megc2019-3class``). ``out_dir`` must not hold a composite already."""
    out = Path(out_dir)
    if (out / TABLE_NAME).exists():
        raise FileExistsError(f"{out / TABLE_NAME} exists: read it with read_synthetic_composite or choose a new "
                              "folder")
    names = [part.dataset for part in parts]
    if len(set(names)) != len(names):
        raise ValueError(f"composite parts must have distinct names, got {names}")
    tables = [_write_part(out, part, duration_s, nuisance_strength, workers) for part in parts]
    table = pd.concat(tables, ignore_index=True)
    save_table(table, out / TABLE_NAME)
    return table


def read_synthetic_composite(out_dir: str | Path) -> pd.DataFrame:
    """The sample table :func:`write_synthetic_composite` wrote into ``out_dir``."""
    return load_table(Path(out_dir) / TABLE_NAME)


def composite_classes() -> list[str]:
    """The class names of the composite's labels (``megc2019-3class``)."""
    return list(get_scheme(SCHEME).classes)


def _write_part(out: Path, part: CompositePart, duration_s: tuple[float, float], nuisance_strength: float,
                workers: int) -> pd.DataFrame:
    pattern = class_pattern(part.counts)
    config = SynthConfig(seed=part.seed, subjects=part.subjects, clips_per_subject=clips_per_subject(part, pattern),
                         classes=pattern, duration_s=duration_s, nuisance_strength=nuisance_strength,
                         size=part.size, fps=part.fps, unlabeled_videos=0, write_mp4=False)
    dataset = write_synthetic_dataset(out / part.dataset, config, workers=workers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = load("casme2", dataset.casme2_root, scheme=SCHEME, fps=float(part.fps))
    return _relabelled(_kept(table, part), part)


def _kept(table: pd.DataFrame, part: CompositePart) -> pd.DataFrame:
    """The part's samples: per class its count, taken clip by clip across the subjects."""
    order = table.assign(_rank=table.groupby("subject").cumcount()).sort_values(["_rank", "subject"], kind="stable")
    kept = []
    for label, count in enumerate(part.counts):
        rows = order[order["label"] == label]
        if len(rows) < count:
            raise ValueError(f"composite part {part.dataset}: {len(rows)} synthetic samples of class "
                             f"{CLASS_ORDER[label]}, {count} needed")
        kept.append(rows.head(count))
    result = pd.concat(kept).drop(columns="_rank").sort_index()
    missing = sorted(set(table["subject"]) - set(result["subject"]))
    if missing:
        raise ValueError(f"composite part {part.dataset}: subject(s) {missing} keep no sample")
    return result.reset_index(drop=True)


def _relabelled(table: pd.DataFrame, part: CompositePart) -> pd.DataFrame:
    """``table`` as dataset ``part.dataset``, its subjects spelled the source's way."""
    spelling = SUBJECT_NAMES[part.dataset]
    numbers = [int(str(subject).rsplit("sub", 1)[-1]) for subject in table["subject"]]
    table = table.assign(dataset=part.dataset,
                         subject=[f"{part.dataset}/{spelling.format(number)}" for number in numbers])
    validate_table(table)
    return table
