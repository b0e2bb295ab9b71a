from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from micronbert.data.flow_images import FROM_GT, FROM_NAMING, MATCH_RULES, read_image_folder, write_image_table
from micronbert.data.table import load_table, make_table, sample_key, save_table, validate_table
from tests.data.flow_image_fixtures import (
    SAMPLES,
    apex_name,
    build_flat,
    build_loso_tree,
    flow_name,
    sample_pixels,
    subject_folder,
    write_htnet_gt,
    write_image,
    write_official_gt,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
REAL_GT = SHARED / "data" / "annotations" / "megc2019_combined_3class_gt.csv"
CLASSES = ("negative", "positive", "surprise")


def _subject(sample: tuple[str, str, str, int]) -> str:
    return f"{sample[0]}/{subject_folder(sample)}"


def _keys(table: pd.DataFrame) -> list[tuple[str, str, str, int]]:
    return [(r.dataset, r.subject, r.clip, int(r.label)) for r in table.itertuples(index=False)]


def _unpadded_in_apex_name(sample: tuple[str, str, str, int]) -> bool:
    return sample[0] == "smic" and int(sample[1][1:]) < 10


def _expected(samples=SAMPLES) -> list[tuple[str, str, str, int]]:
    return [(s[0], _subject(s), s[2], s[3]) for s in samples]


# --- leave-one-subject-out tree ----------------------------------------------------------------------------------
def test_tree_without_gt_takes_subjects_labels_and_datasets_from_folders_and_names(tmp_path: Path) -> None:
    root = build_loso_tree(tmp_path)
    table, report = read_image_folder(root)
    assert sorted(_keys(table)) == sorted(_expected())
    folds = {subject_folder(s) for s in SAMPLES}
    assert report.layout == "loso-tree"
    assert report.train_copies_checked == len(SAMPLES) * (len(folds) - 1) and report.train_copies_missing == 0
    assert report.subject_sources == {_subject(s): FROM_NAMING for s in SAMPLES}
    for row in table.itertuples(index=False):
        image = Path(row.image)
        assert image.is_absolute() and image.parent.parent.name == "u_test"
        assert image.parent.parent.parent.name == row.subject.split("/")[1] and image.parent.name == str(row.label)
        assert row.frames == [] and pd.isna(row.onset) and pd.isna(row.apex) and pd.isna(row.offset)
        assert row.emotion == CLASSES[row.label]
    assert all("space-before-extension" in match.rules for match in report.matches)
    assert len(report.matches) == len(SAMPLES)


def test_tree_train_copies_are_other_encodings_of_the_same_pixels(tmp_path: Path) -> None:
    root = build_loso_tree(tmp_path)
    sample = SAMPLES[0]
    test_copy = root / subject_folder(sample) / "u_test" / "1" / flow_name(sample)
    train_copy = root / subject_folder(SAMPLES[3]) / "u_train" / "1" / flow_name(sample)
    assert test_copy.read_bytes() != train_copy.read_bytes()
    table, _ = read_image_folder(root)
    assert len(table) == len(SAMPLES)


def test_tree_with_official_gt_takes_datasets_from_it_in_gt_order(tmp_path: Path) -> None:
    root = build_loso_tree(tmp_path)
    gt = write_official_gt(tmp_path / "combined_3class_gt.csv")
    table, report = read_image_folder(root, gt)
    assert _keys(table) == _expected()
    assert report.subject_sources == {_subject(s): FROM_GT for s in SAMPLES}
    samm_rules = [m.rules for m in report.matches if m.sample.startswith("samm")]
    assert samm_rules and all(set(r) == {"space-before-extension", "samm-subject-padding"} for r in samm_rules)
    assert report.ground_truth_format == "megc2019"


def test_tree_label_contradicting_the_gt_is_named(tmp_path: Path) -> None:
    root = build_loso_tree(tmp_path)
    changed = [(d, s, c, 2 if c == "EP02_01f" else label) for d, s, c, label in SAMPLES]
    gt = write_official_gt(tmp_path / "gt.csv", changed)
    with pytest.raises(ValueError, match=r"EP02_01f \.png: label folder '1' but .*line 1 gives class 2"):
        read_image_folder(root, gt)


def test_tree_sample_in_another_subjects_folder_is_named(tmp_path: Path) -> None:
    root = build_loso_tree(tmp_path, folder=lambda s: "sub03" if s[2] == "EP02_01f" else subject_folder(s))
    gt = write_official_gt(tmp_path / "combined_3class_gt.csv")
    with pytest.raises(ValueError, match=r"sub03/u_test/1/sub01_EP02_01f \.png: the name matches .* line 1 \(casme2 "
                                         r"sub01\), not a sample of its subject folder 'sub03'"):
        read_image_folder(root, gt)


def test_train_copy_with_other_pixels_names_both_files(tmp_path: Path) -> None:
    root = build_loso_tree(tmp_path)
    sample = SAMPLES[6]
    train_copy = root / "sub03" / "u_train" / "0" / flow_name(sample)
    write_image(train_copy, sample_pixels(99))
    with pytest.raises(ValueError, match=r"sub03/u_train/0/s01_s01_ne_01 \.png and its test copy .*s01/u_test/0/"
                                         r"s01_s01_ne_01 \.png hold different pixels"):
        read_image_folder(root)


def test_train_copies_that_leak_lack_a_test_copy_or_change_label_are_errors(tmp_path: Path) -> None:
    root = build_loso_tree(tmp_path)
    own = root / "sub01" / "u_train" / "1" / flow_name(SAMPLES[0])
    write_image(own, sample_pixels(0))
    with pytest.raises(ValueError, match="also in its own u_train"):
        read_image_folder(root)
    own.unlink()
    orphan = write_image(root / "sub01" / "u_train" / "0" / "sub09_EP01_01 .png", sample_pixels(0))
    with pytest.raises(ValueError, match=r"sub09_EP01_01 \.png: a train copy with no test copy"):
        read_image_folder(root)
    orphan.unlink()
    relabelled = root / "sub03" / "u_train" / "1" / flow_name(SAMPLES[0])
    relabelled.rename(root / "sub03" / "u_train" / "2" / flow_name(SAMPLES[0]))
    with pytest.raises(ValueError, match="labelled '2' but its test copy"):
        read_image_folder(root)


def test_missing_train_copies_are_reported_not_fatal(tmp_path: Path) -> None:
    root = build_loso_tree(tmp_path)
    (root / "sub03" / "u_train" / "1" / flow_name(SAMPLES[0])).unlink()
    table, report = read_image_folder(root)
    assert len(table) == len(SAMPLES) and report.train_copies_missing == 1
    assert any("1 train copies are absent" in warning for warning in report.load.warnings)


def test_subject_without_test_samples_is_named(tmp_path: Path) -> None:
    root = build_loso_tree(tmp_path)
    for path in (root / "s11" / "u_test").rglob("*.png"):
        path.unlink()
    with pytest.raises(ValueError, match=r"s11: subject 's11' has no test samples"):
        read_image_folder(root)


def test_label_folder_outside_the_scheme_is_named(tmp_path: Path) -> None:
    root = build_loso_tree(tmp_path, SAMPLES[:1] + (("casme2", "sub02", "EP01_11f", 3),))
    with pytest.raises(ValueError, match=r"sub02_EP01_11f \.png: label folder '3' is outside the scheme "
                                         "megc2019-3class"):
        read_image_folder(root)


def test_tree_label_folders_may_be_class_names(tmp_path: Path) -> None:
    root = build_loso_tree(tmp_path, SAMPLES[:4])
    for label_dir in sorted(root.glob("*/*/[012]")):
        label_dir.rename(label_dir.with_name(CLASSES[int(label_dir.name)].capitalize()))
    table, _ = read_image_folder(root)
    assert sorted(_keys(table)) == sorted(_expected(SAMPLES[:4]))


def test_subject_folder_without_naming_convention_needs_gt(tmp_path: Path) -> None:
    root = build_loso_tree(tmp_path, SAMPLES[:3], folder=lambda s: f"p{s[1]}")
    with pytest.raises(ValueError, match=r"psub01: subject folder 'psub01' follows no naming convention"):
        read_image_folder(root)


def test_tree_names_without_subject_prefix_and_with_smic_variants(tmp_path: Path) -> None:
    names = {"006_1_2": "006_1_2.png", "s01_ne_01": "s1_ne_01.png", "s01_po_02": "s01_s1_po_02 .png"}
    samples = [s for s in SAMPLES if s[2] in names]
    root = build_loso_tree(tmp_path, samples, name=lambda s: names[s[2]])
    table, report = read_image_folder(root)
    assert sorted(_keys(table)) == sorted(_expected(samples))
    rules = {m.file.rsplit("/", 1)[1]: set(m.rules) for m in report.matches}
    assert rules == {"006_1_2.png": {"no-subject-prefix"}, "s1_ne_01.png": {"no-subject-prefix", "smic-clip-padding"},
                     "s01_s1_po_02 .png": {"space-before-extension", "smic-clip-padding"}}


# --- flat folders ---------------------------------------------------------------------------------------------
def test_flat_flow_folder_with_official_gt(tmp_path: Path) -> None:
    root = build_flat(tmp_path)
    gt = write_official_gt(tmp_path / "combined_3class_gt.csv")
    table, report = read_image_folder(root, gt)
    assert _keys(table) == _expected()
    assert [Path(p).name for p in table["image"]] == [flow_name(s) for s in SAMPLES]
    expected_rules = {s: {"space-before-extension"} | ({"samm-subject-padding"} if s[0] == "samm" else set())
                      for s in SAMPLES}
    assert [set(m.rules) for m in sorted(report.matches, key=lambda m: m.file)] == \
        [expected_rules[s] for s in sorted(SAMPLES, key=flow_name)]
    assert report.layout == "flat" and report.image_format is not None and report.image_format.channels == 3
    assert set(report.subject_sources.values()) == {FROM_GT}


def test_flat_apex_folder_with_htnet_gt_and_grey_images(tmp_path: Path) -> None:
    root = build_flat(tmp_path, name=apex_name, channels=1, folder_name="combined_datasets_whole")
    gt = write_htnet_gt(tmp_path / "combined_3_class2_for_optical_flow.csv", apex={"EP02_01f": 46})
    table, report = read_image_folder(root, gt, kind="apex")
    assert _keys(table) == _expected()
    assert report.ground_truth_format == "htnet" and report.image_format.channels == 1
    padded = {sample_key(s[0], _subject(s), s[2], None) for s in SAMPLES if _unpadded_in_apex_name(s)}
    assert 0 < len(padded) < len(SAMPLES)
    for match in report.matches:
        assert match.rules == (("smic-clip-padding",) if match.sample in padded else ("exact",))
    first = table.iloc[0]
    assert first["apex"] == 46 and first["apex_source"] == "annotated"
    assert table["apex"].iloc[1:].isna().all()


def test_official_gt_with_a_header_row_is_read(tmp_path: Path) -> None:
    gt = tmp_path / "combined_3class_gt.csv"
    gt.write_text("dataset,subject,filename,label\n" + "".join(f"{d},{s},{c},{x}\n" for d, s, c, x in SAMPLES),
                  encoding="utf-8")
    table, report = read_image_folder(build_flat(tmp_path), gt)
    assert _keys(table) == _expected() and report.ground_truth_format == "megc2019"


def test_apex_names_match_the_official_gt_too(tmp_path: Path) -> None:
    root = build_flat(tmp_path, name=apex_name)
    table, report = read_image_folder(root, write_official_gt(tmp_path / "gt.csv"), kind="apex")
    assert _keys(table) == _expected()
    padded = sum(_unpadded_in_apex_name(s) for s in SAMPLES)
    samm = sum(s[0] == "samm" for s in SAMPLES)
    assert report.rule_counts() == {"exact": len(SAMPLES) - samm - padded, "samm-subject-padding": samm,
                                    "smic-clip-padding": padded}


@pytest.mark.parametrize(
    ("name", "clip", "rules"),
    [
        ("s1_s1_ne_01.png", "s01_ne_01", {"smic-subject-padding", "smic-clip-padding"}),
        ("s01_ne_01.png", "s01_ne_01", {"no-subject-prefix"}),
        ("S01_S01_NE_01 .png", "s01_ne_01", {"space-before-extension", "letter-case"}),
        ("6_006_1_2.png", "006_1_2", {"exact"}),
        ("006_1_2 .png", "006_1_2", {"space-before-extension", "no-subject-prefix"}),
        ("sub01_EP02_01f.jpg", "EP02_01f", {"exact"}),
    ],
)
def test_published_name_variants_are_matched_and_reported(tmp_path: Path, name: str, clip: str,
                                                           rules: set[str]) -> None:
    sample = next(s for s in SAMPLES if s[2] == clip)
    root = tmp_path / "flat"
    write_image(root / name, sample_pixels(0))
    table, report = read_image_folder(root, write_official_gt(tmp_path / "gt.csv", [sample]))
    assert _keys(table) == _expected([sample])
    assert set(report.matches[0].rules) == rules and rules <= set(MATCH_RULES)


def test_write_image_table_round_trips_and_names_the_scheme(tmp_path: Path) -> None:
    table, report = read_image_folder(build_flat(tmp_path), write_official_gt(tmp_path / "gt.csv"))
    table_path, report_path = write_image_table(table, report, tmp_path / "out")
    loaded = load_table(table_path)
    assert list(loaded["image"]) == list(table["image"]) and _keys(loaded) == _expected()
    saved = json.loads(report_path.read_text(encoding="utf-8"))
    assert saved["scheme"] == "megc2019-3class" and saved["samples"] == len(SAMPLES)
    assert saved["datasets"] == {"casme2": 3, "samm": 3, "smic": 3}
    assert saved["ground_truth"]["format"] == "megc2019" and len(saved["matching"]["files"]) == len(SAMPLES)
    assert set(saved["subject_dataset_sources"]) == {_subject(s) for s in SAMPLES}


# --- errors ---------------------------------------------------------------------------------------------------
@pytest.fixture
def flat(tmp_path: Path) -> tuple[Path, Path]:
    return build_flat(tmp_path), write_official_gt(tmp_path / "gt.csv")


def test_image_of_another_size_is_named(flat: tuple[Path, Path]) -> None:
    root, gt = flat
    write_image(root / flow_name(SAMPLES[4]), sample_pixels(4, size=8))
    with pytest.raises(ValueError, match=r"026_026_1_1 \.png: 8x8, 3 channels, uint8, but 8 of 9 images of the "
                                         "folder are 6x6"):
        read_image_folder(root, gt)


def test_flow_image_without_three_channels_is_named(flat: tuple[Path, Path]) -> None:
    root, gt = flat
    write_image(root / flow_name(SAMPLES[1]), sample_pixels(1, channels=1))
    with pytest.raises(ValueError, match=r"sub01_EP19_05f \.png: a flow image needs 3 channels"):
        read_image_folder(root, gt)


def test_apex_images_of_mixed_channels_are_named(flat: tuple[Path, Path]) -> None:
    root, gt = flat
    write_image(root / flow_name(SAMPLES[1]), sample_pixels(1, channels=1))
    with pytest.raises(ValueError, match=r"sub01_EP19_05f \.png: 6x6, 1 channel, uint8, but 8 of 9"):
        read_image_folder(root, gt, kind="apex")


@pytest.mark.parametrize("content", [b"", b"not a png at all"])
def test_unreadable_image_is_named(flat: tuple[Path, Path], content: bytes) -> None:
    root, gt = flat
    (root / flow_name(SAMPLES[2])).write_bytes(content)
    with pytest.raises(ValueError, match=r"sub03_EP06_02_01 \.png: not a readable image"):
        read_image_folder(root, gt)


def test_image_without_gt_row_is_named(flat: tuple[Path, Path]) -> None:
    root, gt = flat
    write_image(root / "sub02_EP01_11f .png", sample_pixels(0))
    with pytest.raises(ValueError, match=r"sub02_EP01_11f \.png: no row of the ground truth .*gt\.csv matches"):
        read_image_folder(root, gt)


def test_gt_row_without_image_is_an_error_unless_skipped(flat: tuple[Path, Path]) -> None:
    root, gt = flat
    (root / flow_name(SAMPLES[5])).unlink()
    with pytest.raises(ValueError, match=r"gt\.csv: 1 ground-truth rows have no image .* line 6 \(samm 26 026_2_1\)"):
        read_image_folder(root, gt)
    table, report = read_image_folder(root, gt, skip_missing=True)
    assert _keys(table) == _expected(SAMPLES[:5] + SAMPLES[6:])
    assert [(d.key, d.reason) for d in report.load.dropped] == [
        ("samm samm/026 026_2_1 @?", "ground-truth line 6 has no image")]


def test_two_images_of_one_sample_are_named(flat: tuple[Path, Path]) -> None:
    root, gt = flat
    write_image(root / "sub01_EP02_01f.png", sample_pixels(0))
    with pytest.raises(ValueError, match=r"sub01_EP02_01f(\.| \.)png and .*sub01_EP02_01f( \.|\.)png are images of "
                                         "the same ground-truth sample"):
        read_image_folder(root, gt)


def test_gt_label_outside_the_scheme_is_named(tmp_path: Path) -> None:
    casme2 = [s for s in SAMPLES if s[0] == "casme2"]
    root = build_flat(tmp_path, casme2)
    gt = write_official_gt(tmp_path / "gt.csv", casme2)
    with pytest.raises(ValueError, match=r"gt\.csv line 1: class 1 \(positive\) of casme2 is outside the scheme "
                                         "casme2-5class"):
        read_image_folder(root, gt, scheme="casme2-5class")
    with pytest.raises(ValueError, match=r"a casme2 sample, but the scheme smic-3class is for"):
        read_image_folder(root, gt, scheme="smic-3class")


def test_flat_folder_needs_gt_and_gt_needs_a_known_format(flat: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = flat
    with pytest.raises(ValueError, match="needs a ground truth"):
        read_image_folder(root)
    odd = tmp_path / "odd.csv"
    odd.write_text("name,emotion\nsub01_EP02_01f,happiness\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"odd\.csv: neither the MEGC 2019 ground truth"):
        read_image_folder(root, odd)
    reordered = tmp_path / "htnet.csv"
    reordered.write_text("sub,dataset,filename_o,label,apex,imagename,sub_filename\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"htnet\.csv: an HTNet-style ground truth must begin"):
        read_image_folder(root, reordered)
    bad = write_official_gt(tmp_path / "bad.csv", [("casme2", "sub01", "EP02_01f", 5)])
    with pytest.raises(ValueError, match=r"bad\.csv line 1: label '5'"):
        read_image_folder(root, bad)


def test_bad_arguments_and_empty_or_mixed_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        read_image_folder(tmp_path / "absent")
    with pytest.raises(ValueError, match="kind must be one of"):
        read_image_folder(tmp_path, kind="frames")
    with pytest.raises(ValueError, match="neither <subject>/u_test"):
        read_image_folder(tmp_path)
    root = build_loso_tree(tmp_path, SAMPLES[:2])
    write_image(root / "stray.png", sample_pixels(0))
    with pytest.raises(ValueError, match="holds both images and <subject>/u_test folders"):
        read_image_folder(root)


# --- the table's image column ---------------------------------------------------------------------------------
def _row(**changes: object) -> dict:
    row = {"dataset": "samm", "subject": "samm/006", "clip": "006_1_2", "frames": [], "emotion": "negative",
           "label": 0, "image": "/data/flow/006_006_1_2 .png"}
    row.update(changes)
    return row


def test_image_column_round_trips_through_csv(tmp_path: Path) -> None:
    table = make_table([_row(), _row(clip="006_1_3", image=None)])
    path = save_table(table, tmp_path / "table.csv")
    loaded = load_table(path)
    assert loaded.loc[0, "image"] == "/data/flow/006_006_1_2 .png" and loaded.loc[1, "image"] is None
    assert "image" not in make_table([{k: v for k, v in _row().items() if k != "image"}]).columns


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_image_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"samm samm/006 006_1_2 @\?: image .* is not a path"):
        validate_table(make_table([_row(image=value)]))


# --- the real ground truth ------------------------------------------------------------------------------------
def _real_gt_rows() -> list[tuple[str, str, str, int]]:
    if not REAL_GT.is_file():
        pytest.skip(f"real MEGC 2019 ground truth not available ({REAL_GT})")
    with REAL_GT.open(newline="", encoding="utf-8-sig") as stream:
        return [(r[0], r[1], r[2], int(r[3])) for r in csv.reader(stream) if r]


def test_published_flow_names_match_every_row_of_the_real_gt(tmp_path: Path) -> None:
    rows = _real_gt_rows()
    root = build_flat(tmp_path, rows)
    table, report = read_image_folder(root, REAL_GT)
    assert len(table) == 442 and table["subject"].nunique() == 68  # docs/DATASETS.md, MEGC 2019 composite
    assert table["dataset"].value_counts().to_dict() == {"smic": 164, "casme2": 145, "samm": 133}
    assert table["label"].value_counts().to_dict() == {0: 250, 1: 109, 2: 83}
    assert _keys(table) == [(d, f"{d}/{f'{int(s):03d}' if d == 'samm' else s}", c, label) for d, s, c, label in rows]
    counts = report.rule_counts()
    assert counts["space-before-extension"] == 442 and counts["samm-subject-padding"] == 133


def test_apex_names_of_a_subset_match_the_real_gt(tmp_path: Path) -> None:
    rows = _real_gt_rows()
    chosen = {row for dataset in ("casme2", "samm", "smic") for row in [r for r in rows if r[0] == dataset][:3]}
    subset = [row for row in rows if row in chosen]
    root = build_flat(tmp_path, subset, name=apex_name)
    table, report = read_image_folder(root, REAL_GT, kind="apex", skip_missing=True)
    assert [(r.dataset, r.clip, int(r.label)) for r in table.itertuples()] == [(d, c, x) for d, _, c, x in subset]
    assert len(report.load.dropped) == 442 - len(subset)
    smic = [(m.file, m.rules) for m in report.matches if m.sample.startswith("smic")]
    assert smic == [(apex_name(r), ("smic-clip-padding",)) for r in subset if r[0] == "smic"]


def test_tree_subject_folders_resolve_against_the_real_gt(tmp_path: Path) -> None:
    rows = [row for row in _real_gt_rows() if row[1] in {"sub06", "s06", "6"}]  # folders sub06, s06, 006
    assert {row[0] for row in rows} == {"casme2", "smic", "samm"}
    root = build_loso_tree(tmp_path, rows)
    table, report = read_image_folder(root, REAL_GT, skip_missing=True)
    assert sorted(_keys(table)) == sorted(_expected(rows))
    assert set(report.subject_sources) == {"casme2/sub06", "smic/s06", "samm/006"}
    assert len(report.load.dropped) == 442 - len(rows)
