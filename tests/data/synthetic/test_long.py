"""Synthetic long videos for spotting (micronbert.data.synthetic.long): layouts, sheets read back by the spotting
readers, events, blinks, head movements, determinism and configuration checks."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import av
import cv2
import numpy as np
import openpyxl
import pandas as pd
import pytest

from micronbert.data.synthetic import NuisanceConfig, Scene, SyntheticFace, sample_expression
from micronbert.data.synthetic.actions import Blink
from micronbert.data.synthetic.long import (
    CASME_SQ_SHEET,
    CASME_SQ_SHEETS,
    GROUND_TRUTH_FILE,
    SAMM_LV_SHEET,
    SAMM_LV_SHEET_NAME,
    SAMM_ME_HEADER,
    SAMM_ME_SHEET,
    LongVideoConfig,
    read_long_ground_truth,
    scene_from_long_ground_truth,
    write_long_videos,
)
from micronbert.data.synthetic.nuisance import HeadMovement
from micronbert.spotting import get_spotting_dataset, read_intervals_with_report
from tests.spotting.sheet_fixtures import CASME_SQ_CODES, CASME_SQ_FILE, SAMM_LV_HEADER

# 10 s at 30 fps; each video gets exactly 2 micro, 2 macro, 2 blinks and 1 head movement (rate x minutes is whole)
SMALL = {
    "subjects": 2, "videos_per_subject": 1, "duration_s": 10.0, "fps": 30, "size": 64, "micro_per_minute": 12.0,
    "macro_per_minute": 12.0, "blinks_per_minute": 12.0, "head_movements_per_minute": 6.0,
    "macro_duration_s": (0.6, 1.5), "head_movement_duration_s": (0.4, 1.0), "min_gap_s": 0.3,
}
PER_VIDEO = {"micro": 2, "macro": 2, "blink": 2, "head": 1}
COMPARED = ["video", "subject", "type", "onset", "apex", "offset", "au"]


@pytest.fixture(scope="module")
def casme_sq(tmp_path_factory):
    """A CAS(ME)^2-like dataset with the default nuisances."""
    return write_long_videos(tmp_path_factory.mktemp("long") / "casme_sq", LongVideoConfig(layout="casme_sq", **SMALL))


@pytest.fixture(scope="module")
def samm_lv(tmp_path_factory):
    """A SAMM-LV-like dataset with the default nuisances (at 30 fps, to stay small)."""
    return write_long_videos(tmp_path_factory.mktemp("long") / "samm_lv", LongVideoConfig(layout="samm_lv", **SMALL))


@pytest.fixture(scope="module")
def datasets(casme_sq, samm_lv):
    return {"casme_sq": casme_sq, "samm_lv": samm_lv}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A CAS(ME)^2-like dataset without nuisances (frames only), for pixel checks."""
    config = LongVideoConfig(**SMALL, nuisance_strength=0.0, micro_amplitude=(0.01, 0.02), write_mp4=False)
    return write_long_videos(tmp_path_factory.mktemp("clean") / "casme_sq", config)


def _ground_truth(dataset) -> dict:
    return json.loads(dataset.ground_truth_json.read_text())


def _frame(dataset, entry: dict, number: int) -> np.ndarray:
    path = dataset.root / entry["frame_folder"] / entry["frame_name"].format(number=number)
    image = cv2.imread(str(path))
    assert image is not None, path
    return image[..., ::-1].astype(np.int32)


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(["video", "onset"]).reset_index(drop=True)


def _cells(path: Path) -> dict[str, list[tuple]]:
    book = openpyxl.load_workbook(path)
    return {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in book.worksheets}


# --- sheets read back --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["casme_sq", "samm_lv"])
def test_the_spotting_reader_reads_back_the_expressions_of_the_ground_truth(datasets, layout):
    dataset = datasets[layout]
    table, report = read_intervals_with_report(layout, dataset.root)
    assert report.file == dataset.annotation_sheet and not report.repairs and not report.dropped
    truth = read_long_ground_truth(dataset.root)
    expressions = _sorted(truth[truth["in_sheet"]])
    assert set(expressions["type"]) == {"micro", "macro"}
    read = _sorted(table)
    pd.testing.assert_frame_equal(read[COMPARED].astype(object), expressions[COMPARED].astype(object))
    assert (read["apex_source"] == "annotated").all()
    if layout == "casme_sq":
        assert list(read["emotion"]) == list(expressions["objective_class"])
    else:  # from the SAMM micro-expression sheet beside the long-video sheet, for the micro-expressions
        micro = read["type"] == "micro"
        assert list(read.loc[micro, "emotion"]) == list(expressions.loc[micro, "emotion"])
        assert read.loc[~micro, "emotion"].isna().all()
        assert f"emotions of {int(micro.sum())} of {int(micro.sum())} micro-expressions" in " ".join(report.notes)
    assert sorted(set(read["video"])) == sorted(dataset.video_ids)


def test_video_ids_follow_the_megc_tools(datasets):
    assert datasets["casme_sq"].video_ids == ("s15_0101", "s16_0102")
    assert datasets["samm_lv"].video_ids == ("006_1", "007_1")


def test_blinks_and_head_movements_are_in_the_ground_truth_only(datasets):
    for dataset in datasets.values():
        truth = read_long_ground_truth(dataset.ground_truth_json)
        for video, events in truth.groupby("video"):
            assert events["type"].value_counts().to_dict() == PER_VIDEO, video
        assert truth["in_sheet"].tolist() == truth["type"].isin(["micro", "macro"]).tolist()
        expressions = truth[truth["in_sheet"]]
        assert expressions[["objective_class", "emotion", "au"]].notna().all().all()


def test_casme_sq_sheet_has_the_real_layout(datasets):
    dataset = datasets["casme_sq"]
    assert dataset.annotation_sheet.name == CASME_SQ_SHEET == CASME_SQ_FILE
    sheets = _cells(dataset.annotation_sheet)
    assert list(sheets) == list(CASME_SQ_SHEETS)
    codes, rule1, rule2 = (sheets[name] for name in CASME_SQ_SHEETS)
    truth = read_long_ground_truth(dataset.root)
    assert len(codes) == int(truth["in_sheet"].sum())
    for row in codes:  # no header: subject index, expression, onset, apex, offset, AU, emotion, type, self-report
        assert len(row) == 9 and isinstance(row[0], int) and all(isinstance(v, int) for v in row[2:5])
        assert row[1].rsplit("_", 1)[0] in CASME_SQ_CODES.values()
        assert isinstance(row[5], int) if "+" not in str(row[5]) else isinstance(row[5], str)
        assert row[6] in {"negative", "positive", "surprise", "others"}
        assert row[7] in {"micro-expression", "macro-expression"}
    assert [line[2] for line in rule1[:len(codes)]] == [row[0] for row in codes]
    assert all(line[1] == f"s{line[0]}" for line in rule1)
    assert dict(rule2) == CASME_SQ_CODES and all(isinstance(code, str) for code, _ in rule2)


def test_samm_lv_sheet_has_the_real_layout(datasets):
    dataset = datasets["samm_lv"]
    assert dataset.annotation_sheet.name == SAMM_LV_SHEET
    sheets = _cells(dataset.annotation_sheet)
    assert list(sheets) == [SAMM_LV_SHEET_NAME]
    rows = sheets[SAMM_LV_SHEET_NAME]
    assert rows[0][0] == "SAMM Long Videos Dataset - FACS Codes" and "-1" in rows[6][5]
    assert list(rows[9][:len(SAMM_LV_HEADER)]) == SAMM_LV_HEADER
    data = rows[10:]
    assert len(data) == int(read_long_ground_truth(dataset.root)["in_sheet"].sum())
    for line, row in enumerate(data, start=11):
        subject, filename, inducement, onset, apex, offset, duration, kind = row[:8]
        assert isinstance(subject, str) and len(subject) == 3 and filename.startswith(f"{subject}_{inducement}_")
        assert all(isinstance(v, int) for v in (inducement, onset, apex, offset))
        assert duration == f"=SUM(F{line}-D{line})+1" and kind in {"Micro - 1/2", "Macro"}
    micro_rows = _cells(dataset.root / SAMM_ME_SHEET)["FACS"]
    assert list(micro_rows[13]) == list(SAMM_ME_HEADER)
    assert sorted(row[1] for row in micro_rows[14:]) == sorted(row[1] for row in data if row[7] == "Micro - 1/2")
    assert all(isinstance(row[0], int) and row[9][0].isupper() for row in micro_rows[14:])


# --- frames and videos -------------------------------------------------------------------------------------------


def test_frame_folders_and_videos_are_in_the_dataset_layouts(datasets):
    expected = {"casme_sq": ("rawpic/s15/15_0101disgustingteeth", "img001.jpg", "img300.jpg",
                             "rawvideo/s15/15_0101disgustingteeth.mp4"),
                "samm_lv": ("SAMM_longvideos/006_1", "006_1_0001.jpg", "006_1_0300.jpg", "videos/006_1.mp4")}
    for layout, (folder, first, last, mp4) in expected.items():
        dataset = datasets[layout]
        assert dataset.frame_folders[0] == dataset.root / folder and dataset.video_files[0] == dataset.root / mp4
        names = sorted(p.name for p in dataset.frame_folders[0].iterdir())
        assert len(names) == dataset.n_frames == 300 and names[0] == first and names[-1] == last
        entry = _ground_truth(dataset)["videos"][0]
        with av.open(str(dataset.video_files[0])) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(decoded) == dataset.n_frames and decoded[0].shape == (64, 64, 3)
        for number in (1, 150, 300):
            assert np.abs(decoded[number - 1].astype(np.int32) - _frame(dataset, entry, number)).mean() < 6


def test_the_ground_truth_rebuilds_the_scene_of_each_video(clean):
    truth = _ground_truth(clean)
    for entry in truth["videos"]:
        scene = scene_from_long_ground_truth(truth, entry)
        for number in (1, entry["events"][0]["apex"], entry["n_frames"]):
            assert np.abs(scene.frame(number).astype(np.int32) - _frame(clean, entry, number)).mean() < 4


# --- events ------------------------------------------------------------------------------------------------------


def test_events_do_not_overlap_and_lie_inside_the_video(datasets):
    config = LongVideoConfig(**SMALL)
    for dataset in datasets.values():
        truth = read_long_ground_truth(dataset.root)
        for _, events in truth.groupby("video"):
            events = events.sort_values("onset")
            assert (1 <= events["onset"]).all() and (events["offset"] <= dataset.n_frames).all()
            assert ((events["onset"] < events["apex"]) & (events["apex"] < events["offset"])).all()
            gaps = events["onset"].to_numpy()[1:] - events["offset"].to_numpy()[:-1]
            assert (gaps > config.gap_frames).all()
        length = (truth["offset"] - truth["onset"]) / config.frame_rate
        assert (length[truth["type"] == "micro"] <= 0.5).all() and (length[truth["type"] == "macro"] >= 0.6).all()
        blinks = length[truth["type"] == "blink"]
        assert ((blinks >= 0.1) & (blinks <= 0.4)).all()


def test_blinks_change_the_eye_region_and_little_else(clean):
    truth = _ground_truth(clean)
    for entry in truth["videos"]:
        eye = scene_from_long_ground_truth(truth, entry).eye_region
        near_eye = cv2.dilate(eye.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        for event in (e for e in entry["events"] if e["type"] == "blink"):
            change = np.abs(_frame(clean, entry, event["apex"]) - _frame(clean, entry, event["onset"])).sum(-1)
            assert change[near_eye].sum() > 0.6 * change.sum()
            assert change[eye].max() > 5 * change[~near_eye].max()


def test_a_rendered_blink_changes_only_the_eyes():
    blink = Blink(onset_s=0.1, apex_s=0.2, offset_s=0.4)
    scene = Scene(SyntheticFace.sample(4), [], 30, 96, NuisanceConfig.none(), 0, blinks=[blink])
    timing = blink.frame_timing(30)
    assert scene.eyelid_closure(timing.onset) == 0 and scene.eyelid_closure(timing.apex) == 1
    change = np.abs(scene.frame(timing.apex).astype(np.int32) - scene.frame(timing.onset)).sum(-1)
    near_eye = cv2.dilate(scene.eye_region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert change[~near_eye].max() == 0 and change[scene.eye_region].mean() > 40
    np.testing.assert_array_equal(scene.frame(timing.offset), scene.frame(timing.onset))


def test_a_micro_expression_apex_differs_from_its_onset_in_the_au_region(clean):
    truth = _ground_truth(clean)
    for entry in truth["videos"]:
        scene = scene_from_long_ground_truth(truth, entry)
        for event in (e for e in entry["events"] if e["type"] == "micro"):
            region = scene.pair(event["onset"], event["apex"]).au_mask
            change = np.abs(_frame(clean, entry, event["apex"]) - _frame(clean, entry, event["onset"])).sum(-1)
            assert region.any() and change[region].mean() > 4 * change[~region].mean()


def test_a_head_movement_moves_the_whole_face(clean):
    truth = _ground_truth(clean)
    for entry in truth["videos"]:
        scene = scene_from_long_ground_truth(truth, entry)
        for event in (e for e in entry["events"] if e["type"] == "head"):
            face = scene.pair(event["onset"], event["apex"]).face_mask
            change = np.abs(_frame(clean, entry, event["apex"]) - _frame(clean, entry, event["onset"])).sum(-1)
            assert (change[face] > 30).mean() > 0.1
            assert scene.head_pose(event["apex"]) != scene.head_pose(event["onset"])


def test_scenes_without_blinks_or_head_movements_render_as_before():
    expression = sample_expression(np.random.default_rng(3), "positive", 30, 4)
    plain = Scene(SyntheticFace.sample(2), [expression], 30, 48, seed=5)
    movement = HeadMovement(onset_s=2.0, apex_s=2.5, offset_s=3.0, dx=0.05, dy=0.0, angle_deg=5.0)
    later = Scene(SyntheticFace.sample(2), [expression], 30, 48, seed=5, blinks=[Blink(1.0, 1.1, 1.3)],
                  head_movements=[movement])
    for number in range(0, 25, 3):  # before the blink and the movement, the frames are the same
        np.testing.assert_array_equal(plain.frame(number), later.frame(number))


# --- determinism -------------------------------------------------------------------------------------------------


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_the_same_seed_writes_the_same_files(tmp_path):
    tiny = SMALL | {"subjects": 1, "duration_s": 6.0, "micro_per_minute": 10.0, "macro_per_minute": 10.0,
                    "blinks_per_minute": 10.0, "head_movements_per_minute": 10.0}
    first, again = (write_long_videos(tmp_path / name, LongVideoConfig(**tiny)) for name in ("first", "again"))
    files = _files(first.root)
    assert files == _files(again.root) and {p.suffix for p in files} == {".jpg", ".mp4", ".json", ".xlsx"}
    for name in files:
        if name.suffix != ".xlsx":  # openpyxl stamps the time into the workbook: compared cell by cell below
            assert (first.root / name).read_bytes() == (again.root / name).read_bytes(), name
    assert _cells(first.annotation_sheet) == _cells(again.annotation_sheet)
    other = write_long_videos(tmp_path / "other", LongVideoConfig(**tiny | {"seed": 1}))
    assert not read_long_ground_truth(other.root).equals(read_long_ground_truth(first.root))


def test_the_same_seed_writes_the_same_samm_lv_sheet(tmp_path):
    config = LongVideoConfig(layout="samm_lv", **SMALL, write_frame_folders=False, write_mp4=False)
    first, again = (write_long_videos(tmp_path / name, config) for name in ("first", "again"))
    assert _cells(first.annotation_sheet) == _cells(again.annotation_sheet)
    assert first.ground_truth_json.read_bytes() == again.ground_truth_json.read_bytes()


# --- configuration -----------------------------------------------------------------------------------------------


def test_layouts_have_their_frame_rates_and_the_config_round_trips():
    for layout in ("casme_sq", "samm_lv"):
        config = LongVideoConfig(layout=layout)
        assert config.frame_rate == get_spotting_dataset(layout).fps
        assert LongVideoConfig.from_dict(config.to_dict()) == config
    assert LongVideoConfig(layout="samm_lv", fps=100).frame_rate == 100
    assert LongVideoConfig(duration_s=30.0).n_frames == 900


def test_a_sheet_only_samm_lv_dataset_at_200_fps(tmp_path):
    config = LongVideoConfig(layout="samm_lv", subjects=3, videos_per_subject=2, duration_s=20.0,
                             write_frame_folders=False, write_mp4=False)
    dataset = write_long_videos(tmp_path / "samm", config)
    assert dataset.fps == 200 and dataset.n_frames == 4000 and not dataset.frame_folders and not dataset.video_files
    assert sorted(p.name for p in dataset.root.iterdir()) == sorted([SAMM_LV_SHEET, SAMM_ME_SHEET, GROUND_TRUTH_FILE,
                                                                      "synth_long_config.json"])
    table, report = read_intervals_with_report("samm_lv", dataset.root)
    truth = read_long_ground_truth(dataset.root)
    assert not report.repairs and len(table) == int(truth["in_sheet"].sum()) > 0
    assert set(table["video"]) <= {f"{s}_{v}" for s in ("006", "007", "008") for v in (1, 2)}
    micro = truth[truth["type"] == "micro"]
    assert ((micro["offset"] - micro["onset"]) <= 100).all()


@pytest.mark.parametrize("changes, field", [
    ({"layout": "casme2"}, "layout"),
    ({"subjects": 23}, "subjects"),
    ({"layout": "samm_lv", "videos_per_subject": 8}, "videos_per_subject"),
    ({"duration_s": 0.5}, "duration_s"),
    ({"fps": 0}, "fps"),
    ({"size": 63}, "size"),
    ({"classes": ("anger",)}, "classes"),
    ({"micro_per_minute": -1.0}, "micro_per_minute"),
    ({"micro_duration_s": (0.2, 0.8)}, "micro_duration_s"),
    ({"macro_duration_s": (0.3, 2.0)}, "macro_duration_s"),
    ({"fps": 10, "micro_duration_s": (0.04, 0.1)}, "micro_duration_s"),
    ({"macro_amplitude": (0.05, 0.3)}, "macro_amplitude"),
    ({"blink_closure": (0.0, 1.0)}, "blink_closure"),
    ({"head_movement_shift": (0.1, 0.3)}, "head_movement_shift"),
    ({"min_gap_s": -0.1}, "min_gap_s"),
    ({"nuisance_strength": float("nan")}, "nuisance_strength"),
    ({"duration_s": 5.0, "macro_per_minute": 60.0}, "macro_per_minute"),
])
def test_config_rejects_bad_values_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        LongVideoConfig(**changes)


def test_config_from_a_mapping_names_the_field_of_a_wrong_type():
    with pytest.raises(ValueError, match="duration_s"):
        LongVideoConfig.from_dict({"duration_s": "long"})
    with pytest.raises(ValueError, match="unknown option"):
        LongVideoConfig.from_dict({"frames": 10})


def test_writer_refuses_a_non_empty_folder_and_a_foreign_config(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        write_long_videos(tmp_path / "full", LongVideoConfig(**SMALL, write_mp4=False))
    with pytest.raises(ValueError, match="LongVideoConfig"):
        write_long_videos(tmp_path / "new", dataclasses.asdict(LongVideoConfig()))
    assert not (tmp_path / "new").exists()


def test_reading_a_missing_or_foreign_ground_truth_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=GROUND_TRUTH_FILE):
        read_long_ground_truth(tmp_path)
    foreign = {"fps": 30, "videos": [{"video": "s15_0101", "events": [{"type": "micro"}]}]}
    (tmp_path / GROUND_TRUTH_FILE).write_text(json.dumps(foreign))
    with pytest.raises(ValueError, match=f"{GROUND_TRUTH_FILE}.*'subject'"):
        read_long_ground_truth(tmp_path)
    (tmp_path / GROUND_TRUTH_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match=GROUND_TRUTH_FILE):
        read_long_ground_truth(tmp_path)
