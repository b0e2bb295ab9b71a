"""The synthetic MEGC2019-like composite: three synthetic CASME II-like parts relabelled as smic, casme2 and samm,
with the class counts asked for, every subject kept, and per-dataset results from the megc2019 protocol."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from micronbert.data.synthetic.composite import (
    CLASS_ORDER,
    MEGC2019_PARTS,
    CompositePart,
    class_pattern,
    clips_per_subject,
    composite_classes,
    quick_parts,
    read_synthetic_composite,
    write_synthetic_composite,
)
from micronbert.evaluation.folds import make_folds

TINY = tuple(CompositePart(part.dataset, 2, (2, 1, 1), part.fps, 32, part.seed) for part in MEGC2019_PARTS)


@pytest.fixture(scope="module")
def composite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("composite")
    return folder, write_synthetic_composite(folder, TINY, duration_s=(0.05, 0.08))


def test_the_full_size_parts_have_the_real_composites_shape() -> None:
    assert sum(part.subjects for part in MEGC2019_PARTS) == 68
    assert sum(part.samples for part in MEGC2019_PARTS) == 442
    counts = {part.dataset: (part.subjects, part.counts, part.fps) for part in MEGC2019_PARTS}
    assert counts == {"smic": (16, (70, 51, 43), 100), "casme2": (24, (88, 32, 25), 200),
                      "samm": (28, (92, 26, 15), 200)}
    assert len({part.seed for part in MEGC2019_PARTS}) == 3 and len({part.size for part in MEGC2019_PARTS}) == 3


def dealt_counts(part: CompositePart, pattern: tuple[str, ...], clips: int) -> list[int]:
    """How many clips of each class the writer deals to ``part`` with ``clips`` clips per subject."""
    dealt = [pattern[(subject + index) % len(pattern)] for subject in range(part.subjects) for index in range(clips)]
    return [dealt.count(name) for name in CLASS_ORDER]


def test_the_fewest_clips_that_cover_every_class_count_are_dealt() -> None:
    for part in MEGC2019_PARTS:
        pattern = class_pattern(part.counts)
        clips = clips_per_subject(part, pattern)
        assert all(dealt >= count for dealt, count in zip(dealt_counts(part, pattern, clips), part.counts))
        assert any(dealt < count for dealt, count in zip(dealt_counts(part, pattern, clips - 1), part.counts))
        assert max(set(pattern), key=pattern.count) == CLASS_ORDER[part.counts.index(max(part.counts))]


def test_the_written_composite_has_the_asked_counts_datasets_and_subjects(composite) -> None:
    folder, table = composite
    assert sorted(table["dataset"].unique()) == ["casme2", "samm", "smic"]
    for part in TINY:
        rows = table[table["dataset"] == part.dataset]
        assert tuple(int((rows["label"] == label).sum()) for label in range(3)) == part.counts
        assert rows["subject"].nunique() == part.subjects
        assert set(rows["fps"]) == {float(part.fps)}
    assert set(table["subject"]) == {"smic/s01", "smic/s02", "casme2/sub01", "casme2/sub02", "samm/001",
                                     "samm/002"}
    assert all(Path(frame).is_file() for frames in table["frames"] for frame in frames)
    again = read_synthetic_composite(folder)
    columns = ["dataset", "subject", "clip", "onset", "label"]
    assert again[columns].astype(str).values.tolist() == table[columns].astype(str).values.tolist()
    assert composite_classes() == ["negative", "positive", "surprise"]


def test_the_parts_differ_in_pixels(composite) -> None:
    _, table = composite
    first = {name: rows["frames"].iloc[0][0] for name, rows in table.groupby("dataset")}
    assert len({Path(path).read_bytes() for path in first.values()}) == 3


def test_megc2019_folds_hold_out_one_namespaced_subject_each(composite) -> None:
    _, table = composite
    folds = make_folds(table, "megc2019")
    assert len(folds) == 6
    assert all(table["subject"].iloc[fold.test].nunique() == 1 for fold in folds)


def test_a_second_write_into_the_same_folder_is_refused(composite) -> None:
    folder, _ = composite
    with pytest.raises(FileExistsError, match="table.csv exists"):
        write_synthetic_composite(folder, TINY)


def test_bad_parts_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="name must be one of"):
        CompositePart("casme3", 2, (1, 1, 1), 200, 32, 0)
    with pytest.raises(ValueError, match="sample of each class"):
        CompositePart("smic", 2, (0, 1, 1), 100, 32, 0)
    with pytest.raises(ValueError, match="cannot give each of 5 subjects"):
        CompositePart("smic", 5, (1, 1, 1), 100, 32, 0)
    with pytest.raises(ValueError, match="distinct names"):
        write_synthetic_composite(tmp_path, (TINY[0], TINY[0]))


def test_quick_parts_are_balanced_and_small() -> None:
    parts = quick_parts(subjects=4, clips=4)
    assert [part.dataset for part in parts] == ["smic", "casme2", "samm"]
    assert all(part.counts == (6, 5, 5) and part.subjects == 4 and part.size == 64 for part in parts)
