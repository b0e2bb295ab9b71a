"""`micronbert synth` → `micronbert prepare` → the sample table, and face cropping of a real photo clip."""
import json
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pandas as pd
import pytest

from micronbert.cli import main as cli_main
from micronbert.data.datasets import get_scheme
from micronbert.data.frames import frame_number, read_frame
from micronbert.data.prepare import load_samples
from micronbert.data.table import load_table, save_table
from tests.recognition_fixtures import SCHEME, synthetic_casme2_table


def test_synth_then_prepare_reads_back_the_ground_truth(tmp_path):
    out = tmp_path / "synthetic"
    assert cli_main(["synth", str(out), "--subjects", "3", "--clips-per-subject", "2", "--size", "64",
                     "--videos", "1", "--video-frames", "20", "--seed", "3"]) == 0
    assert cli_main(["prepare", "casme2", "--root", str(out / "CASME2"), "--out", str(tmp_path / "prep"),
                     "--no-crop"]) == 0
    table = load_table(tmp_path / "prep" / "table.csv")
    truth = pd.read_csv(out / "CASME2" / "synthetic_ground_truth.csv")
    assert len(table) == len(truth) == 6
    merged = table.assign(subject_folder=table["subject"].str.split("/").str[1]).merge(
        truth, on=["subject_folder", "clip"], suffixes=("", "_truth"))
    assert len(merged) == 6
    for name in ("onset", "apex", "offset"):
        assert (merged[name].astype(int) == merged[f"{name}_truth"]).all()
    assert (merged["emotion"] == merged["emotion_truth"]).all()
    assert set(table["subject"]) == {"casme2/sub01", "casme2/sub02", "casme2/sub03"}
    for _, row in merged.iterrows():
        numbers = [frame_number(f) for f in row["frames"]]
        assert numbers == list(range(row["onset_truth"], row["offset_truth"] + 1))
    report = json.loads((tmp_path / "prep" / "prepare_report.json").read_text())
    assert report["samples"] == 6 and report["dropped"] == [] and report["failed_clips"] == []


def _photo_clip(folder, shifts):
    photo = cv2.imread(str(matplotlib.get_data_path() + "/sample_data/grace_hopper.jpg"))
    folder.mkdir(parents=True)
    for number, (dx, dy) in enumerate(shifts, start=46):
        moved = cv2.warpAffine(photo, np.float32([[1, 0, dx], [0, 1, dy]]), (photo.shape[1], photo.shape[0]),
                               borderMode=cv2.BORDER_REFLECT)
        cv2.imwrite(str(folder / f"img{number}.jpg"), moved)


def test_prepare_crops_faces_once_per_clip_and_keeps_frame_numbers(tmp_path):
    _photo_clip(tmp_path / "data" / "s1" / "c1", [(0, 0), (2, 0), (4, 1)])
    (tmp_path / "data" / "manifest.csv").write_text("subject,clip,emotion,frames_dir,onset,apex,offset\n"
                                                    "s1,c1,happiness,s1/c1,46,47,48\n")
    assert cli_main(["prepare", "manifest", "--root", str(tmp_path / "data"), "--out", str(tmp_path / "prep"),
                     "--size", "64"]) == 0
    table = load_table(tmp_path / "prep" / "table.csv")
    frames = table.loc[0, "frames"]
    assert [frame_number(f) for f in frames] == [46, 47, 48]
    crops = [read_frame(f) for f in frames]
    assert all(c.shape == (64, 64, 3) for c in crops)
    # one alignment for the clip: the content moves with the shift instead of being re-centred
    assert np.abs(crops[0].astype(int) - crops[2].astype(int)).mean() > 1.0
    mtimes = [p.stat().st_mtime_ns for p in (tmp_path / "prep" / "crops").rglob("*.png")]
    assert cli_main(["prepare", "manifest", "--root", str(tmp_path / "data"), "--out", str(tmp_path / "prep"),
                     "--size", "64"]) == 0
    assert [p.stat().st_mtime_ns for p in (tmp_path / "prep" / "crops").rglob("*.png")] == mtimes


def test_prepare_reports_a_clip_without_a_face(tmp_path, capsys):
    folder = tmp_path / "data" / "s1" / "c1"
    folder.mkdir(parents=True)
    for number in (1, 2):
        cv2.imwrite(str(folder / f"img{number}.png"), np.full((120, 120, 3), 128, np.uint8))
    (tmp_path / "data" / "manifest.csv").write_text("subject,clip,emotion,frames_dir\ns1,c1,surprise,s1/c1\n")
    assert cli_main(["prepare", "manifest", "--root", str(tmp_path / "data"), "--out", str(tmp_path / "p")]) == 0
    assert "1 clip(s) could not be cropped" in capsys.readouterr().out
    report = json.loads((tmp_path / "p" / "prepare_report.json").read_text())
    assert report["samples"] == 0 and "img1.png" in report["failed_clips"][0]["error"]


def test_prepared_synthetic_table_runs_through_evaluate_unchanged(tmp_path):
    out = tmp_path / "synthetic"
    assert cli_main(["synth", str(out), "--subjects", "3", "--clips-per-subject", "4", "--size", "64",
                     "--videos", "0", "--seed", "1"]) == 0
    assert cli_main(["prepare", "casme2", "--root", str(out / "CASME2"), "--out", str(tmp_path / "prep"),
                     "--no-crop", "--scheme", "casme2-5class"]) == 0
    report = tmp_path / "eval"
    assert cli_main(["evaluate", "--table", str(tmp_path / "prep" / "table.csv"), "--method", "framediff",
                     "--protocol", "loso", "--out", str(report), "--quiet", "--skip-bad"]) == 0
    table = load_table(tmp_path / "prep" / "table.csv")
    predictions = pd.read_csv(report / "predictions.csv")
    assert len(predictions) == len(table) == 12
    assert set(predictions["subject"]) == {s.split("/")[1] for s in table["subject"]}
    metrics = json.loads((report / "metrics.json").read_text())
    assert 0.0 <= metrics["pooled"]["uf1"] <= 1.0 and metrics["skipped_samples"] == []
    results = (report / "results.md").read_text()  # class names from the scheme prepare labelled the table with
    assert "| happiness |" in results and "| repression |" in results


@pytest.mark.filterwarnings("ignore::micronbert.data.datasets.DatasetWarning")
def test_megc2019_composite_from_the_command_line(tmp_path):
    from tests.data.fixture_trees import build_casme2, build_samm, build_smic, megc_gt_rows, write_megc_gt

    gt = write_megc_gt(tmp_path / "gt" / "combined_3class_gt.csv", megc_gt_rows())
    roots = {"casme2": build_casme2(tmp_path), "samm": build_samm(tmp_path), "smic": build_smic(tmp_path), "gt": gt}
    root_args = [arg for name, path in roots.items() for arg in ("--root", f"{name}={path}")]
    prepared = tmp_path / "prep"
    assert cli_main(["prepare", "megc2019", *root_args, "--out", str(prepared), "--no-crop"]) == 0
    table = load_table(prepared / "table.csv")
    assert len(table) == len(megc_gt_rows()) and table["frames"].map(len).gt(0).all()
    assert set(table["subject"].str.split("/").str[0]) == {"casme2", "samm", "smic"}
    report = json.loads((prepared / "prepare_report.json").read_text())
    assert report["scheme"] == "megc2019-3class"

    assert cli_main(["evaluate", "--table", str(prepared / "table.csv"), "--method", "framediff", "--protocol",
                     "megc2019", "--out", str(tmp_path / "report"), "--quiet"]) == 0
    results = (tmp_path / "report" / "results.md").read_text()
    assert "negative" in results and "surprise" in results  # class names from the scheme prepare recorded


def test_several_roots_must_each_be_named(tmp_path, capsys):
    assert cli_main(["prepare", "megc2019", "--root", str(tmp_path), "--root", f"samm={tmp_path}",
                     "--out", str(tmp_path / "p")]) == 2
    assert "several roots must each read NAME=PATH" in capsys.readouterr().err
    assert cli_main(["prepare", "megc2019", "--root", f"samm={tmp_path}", "--root", f"samm={tmp_path}",
                     "--out", str(tmp_path / "p")]) == 2
    assert "root 'samm' is given twice" in capsys.readouterr().err


def test_class_names_come_from_the_scheme_prepare_recorded(tmp_path: Path) -> None:
    casme2_table = synthetic_casme2_table(tmp_path / "synthetic", subjects=2)
    table_file = save_table(casme2_table, tmp_path / "table.csv")
    assert load_samples(str(table_file), None, None, None)[1] == [str(i) for i in range(5)]
    report = tmp_path / "prepare_report.json"
    report.write_text(json.dumps({"dataset": "casme2", "scheme": SCHEME}))
    assert load_samples(str(table_file), None, None, None)[1] == list(get_scheme(SCHEME).classes)
    report.write_text(json.dumps({"dataset": "casme2", "scheme": "megc2019-3class"}))
    with pytest.raises(ValueError, match="table.csv: label 4 does not fit the 3 classes of megc2019-3class"):
        load_samples(str(table_file), None, None, None)
    report.write_text("{broken")
    with pytest.raises(ValueError, match="prepare_report.json: not a readable prepare report"):
        load_samples(str(table_file), None, None, None)
