"""Class schemes against the class lists and counts of DATASETS.md §3.3, §4.3, §7.3, §12, §13."""
from __future__ import annotations

import pytest

from micronbert.data.datasets.schemes import apply_scheme, available_schemes, get_scheme, normalise_emotion
from micronbert.data.table import LoadReport, make_table


def _table(dataset: str, emotion_counts: dict[str, int]) -> object:
    rows = []
    for emotion, count in emotion_counts.items():
        for index in range(count):
            rows.append({"dataset": dataset, "subject": f"{dataset}/s{index % 5}", "clip": f"{emotion}{index}",
                         "onset": index, "emotion": normalise_emotion(emotion)})
    return make_table(rows)


def _class_counts(table, scheme: str) -> dict[str, int]:
    names = get_scheme(scheme).classes
    return {names[label]: count for label, count in table["label"].value_counts().items()}


# CASME II coding sheet in the BENCH version (disgust 64): 5-class keeps 247.
CASME2_EMOTIONS = {"happiness": 32, "surprise": 25, "disgust": 64, "repression": 27, "others": 99, "fear": 2,
                   "sadness": 7}
SAMM_EMOTIONS = {"Anger": 57, "Contempt": 12, "Happiness": 26, "Surprise": 15, "Other": 26, "Disgust": 9, "Fear": 8,
                 "Sadness": 6}
CASME3_EMOTIONS = {"disgust": 250, "surprise": 187, "others": 158, "Others": 3, "fear": 86, "anger": 64, "sad": 57,
                   "happy": 55}


def test_shipped_schemes() -> None:
    assert set(available_schemes()) >= {"casme2-5class", "samm-5class", "smic-3class", "megc2019-3class",
                                        "casme3-7class", "casme3-4class", "casme3-3class"}
    assert get_scheme("megc2019-3class").classes == ("negative", "positive", "surprise")
    assert get_scheme("casme3-4class").classes == ("negative", "positive", "surprise", "others")
    assert get_scheme("casme2-5class").classes == ("happiness", "surprise", "disgust", "repression", "others")


def test_casme2_five_class_counts() -> None:
    table = apply_scheme(_table("casme2", CASME2_EMOTIONS), "casme2-5class", LoadReport("t"))
    assert len(table) == 247
    assert _class_counts(table, "casme2-5class") == {"happiness": 32, "surprise": 25, "disgust": 64, "repression": 27,
                                                     "others": 99}


def test_samm_five_and_three_class_counts() -> None:
    five = apply_scheme(_table("samm", SAMM_EMOTIONS), "samm-5class", LoadReport("t"))
    assert _class_counts(five, "samm-5class") == {"anger": 57, "contempt": 12, "happiness": 26, "surprise": 15,
                                                  "others": 26}
    three = apply_scheme(_table("samm", SAMM_EMOTIONS), "megc2019-3class", LoadReport("t"))
    assert _class_counts(three, "megc2019-3class") == {"negative": 92, "positive": 26, "surprise": 15}


def test_megc_mapping_drops_casme2_fear_and_sadness() -> None:
    report = LoadReport("t")
    three = apply_scheme(_table("casme2", CASME2_EMOTIONS), "megc2019-3class", report)
    assert _class_counts(three, "megc2019-3class") == {"negative": 64 + 27, "positive": 32, "surprise": 25}
    assert report.drop_reasons()["emotion 'fear' not in scheme megc2019-3class"] == 2


def test_casme3_schemes_counts() -> None:
    table = _table("casme3", CASME3_EMOTIONS)
    seven = apply_scheme(table, "casme3-7class", LoadReport("t"))
    assert _class_counts(seven, "casme3-7class") == {"disgust": 250, "surprise": 187, "others": 161, "fear": 86,
                                                     "anger": 64, "sad": 57, "happy": 55}
    four = apply_scheme(table, "casme3-4class", LoadReport("t"))
    assert _class_counts(four, "casme3-4class") == {"negative": 457, "surprise": 187, "others": 161, "positive": 55}
    assert len(apply_scheme(table, "casme3-3class", LoadReport("t"))) == 699


def test_scheme_refuses_foreign_dataset_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="not for \\['samm'\\]"):
        apply_scheme(_table("samm", {"anger": 1}), "casme2-5class", LoadReport("t"))
    with pytest.raises(ValueError, match="unknown class scheme 'nine-class'"):
        get_scheme("nine-class")


@pytest.mark.parametrize(("raw", "normalised"), [("Others", "others"), ("Other", "others"),
                                                 (" Happiness ", "happiness"),
                                                 ("", None), (None, None)])
def test_normalise_emotion(raw: object, normalised: str | None) -> None:
    assert normalise_emotion(raw) == normalised
