"""Spotting evaluation on tiny synthetic long videos (CAS(ME)^2-like and SAMM-LV-like, written once for the module):
the files it writes agree with each other and with the metric, every video is tracked once, and the spot-eval and
spot-demo commands run end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from micronbert.cli import build_parser, command_config, main
from micronbert.data.faces import FaceTrackConfig
from micronbert.data.synthetic import write_long_videos
from micronbert.spotting import evaluate as evaluate_module
from micronbert.spotting import (
    get_spotter,
    read_intervals,
    read_megc_csv,
    read_str_csv,
    spotting_scores_by_dataset,
)
from micronbert.spotting import videos as videos_module
from micronbert.spotting.evaluate import SpotDemoConfig, SpotEvalConfig, evaluate_spotting

# Two subjects per layout, 8 s at 30 fps and 2 s at 200 fps, 128-pixel frames (identities of seed 2, which the
# OpenCV cascade finds).
TINY = ["casme_sq.subjects=2", "casme_sq.duration_s=8", "casme_sq.size=128", "casme_sq.micro_per_minute=22.5",
        "casme_sq.macro_per_minute=7.5", "casme_sq.macro_duration_s=[0.6,1.2]", "casme_sq.min_gap_s=0.3",
        "casme_sq.classes=[positive,negative]", "samm_lv.subjects=2", "samm_lv.duration_s=2", "samm_lv.size=128",
        "samm_lv.micro_per_minute=30", "samm_lv.macro_per_minute=30", "samm_lv.macro_duration_s=[0.5,0.6]",
        "samm_lv.min_gap_s=0.2"]
# Fewer threshold factors to try and a smaller flow: each run takes a few seconds.
FAST = {"p_grid": [0.2, 0.5], "flow": {"size": 64}}


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    """A spot-demo output folder whose synthetic videos are already written (the demo reuses them)."""
    out = tmp_path_factory.mktemp("spot_demo")
    config = SpotDemoConfig.for_run(None, TINY, quick=True)
    for name in ("casme_sq", "samm_lv"):
        write_long_videos(out / "data" / name, getattr(config, name))
    return out


def roots(demo_folder: Path) -> dict[str, Path]:
    return {name: demo_folder / "data" / name for name in ("casme_sq", "samm_lv")}


def test_files_agree_with_the_metric_and_each_video_is_tracked_once(demo_folder, tmp_path, monkeypatch):
    tracked, passes = [], []
    track_face, stream = videos_module.track_face, videos_module.FolderFrames.__call__
    monkeypatch.setattr(videos_module, "track_face", lambda *a, **k: tracked.append(1) or track_face(*a, **k))
    monkeypatch.setattr(videos_module.FolderFrames, "__call__", lambda self: passes.append(1) or stream(self))
    data = roots(demo_folder)

    result = evaluate_spotting(list(data.items()), [get_spotter("flow-roi", FAST)], tmp_path,
                               track=FaceTrackConfig(size=112), crop_memory_mb=64)

    assert len(tracked) == 4 < len(passes), "each video is tracked once; later passes read the crops from memory"
    truth = pd.concat([read_intervals(name, root) for name, root in data.items()], ignore_index=True)
    full = pd.read_csv(tmp_path / "predictions_flow-roi_full.csv")
    assert list(full.columns) == ["dataset", "subject", "video", "onset", "apex", "offset", "type", "score"]
    megc = read_megc_csv(tmp_path / "predictions_flow-roi.csv")
    assert megc.to_dict("records") == full[["video", "onset", "offset", "type"]].to_dict("records")
    written = pd.read_csv(tmp_path / "spotting_scores.csv")
    for rule in ("megc2020", "one-to-one"):
        expected = spotting_scores_by_dataset(full, truth, rule)
        for dataset in ("casme_sq", "samm_lv", "pooled"):
            for kind in ("micro", "macro", "overall"):
                row = written[(written["rule"] == rule) & (written["dataset"] == dataset) & (written["type"] == kind)]
                assert row[["tp", "n_pred", "n_true"]].iloc[0].tolist() == [expected[dataset][kind].tp,
                                                                           expected[dataset][kind].n_pred,
                                                                           expected[dataset][kind].n_true]
                assert row["f1"].iloc[0] == pytest.approx(expected[dataset][kind].f1)
    settings = pd.read_csv(tmp_path / "fold_settings_flow-roi.csv", dtype={"subject": str})
    assert sorted(set(zip(settings["dataset"], settings["subject"]))) == [
        ("casme_sq", "s15"), ("casme_sq", "s16"), ("samm_lv", "006"), ("samm_lv", "007")]
    report = json.loads((tmp_path / "results.json").read_text())
    assert sorted((row["video"], row["tracked"], row["faceless"]) for row in report["tracking"]) == [
        ("006_1", 58, 0), ("007_1", 58, 0), ("s15_0101", 240, 0), ("s16_0102", 240, 0)]
    assert report["scores"]["flow-roi"]["megc2020"]["pooled"]["overall"]["n_true"] == 12
    assert "| flow-roi | casme_sq |" in result.report.read_text() and not result.warnings


def test_an_interrupted_run_resumes_from_the_signals_it_left(demo_folder, tmp_path, monkeypatch):
    data = list(roots(demo_folder).items())
    spotter = get_spotter("flow-roi", FAST)
    track = FaceTrackConfig(size=112)
    computed: list[str] = []
    signal = type(spotter).signal

    def counted(self, video, ks):
        computed.append(video.video)
        if video.video == "006_1" and stop_at_samm:
            raise KeyboardInterrupt
        return signal(self, video, ks)

    monkeypatch.setattr(type(spotter), "signal", counted)
    stop_at_samm = True
    with pytest.raises(KeyboardInterrupt):
        evaluate_spotting(data, [spotter], tmp_path, track=track)
    assert sorted(computed[:2]) == ["s15_0101", "s16_0102"] and not (tmp_path / "results.json").exists()

    stop_at_samm, computed[:] = False, []
    resumed = evaluate_spotting(data, [spotter], tmp_path, track=track)
    # CAS(ME)^2-like videos finished; 007_1 trained the fold that held 006_1 out, so its signal at that fold's frame
    # distances was saved too (it is computed again only at the distances its own fold needs)
    assert "006_1" in computed and not {"s15_0101", "s16_0102"} & set(computed)
    assert any("signals of 3 video(s) were read from signals/" in note for note in resumed.notes)
    tracking = json.loads((tmp_path / "results.json").read_text())["tracking"]
    assert sorted((row["video"], row["tracked"]) for row in tracking) == [
        ("006_1", 58), ("007_1", 58), ("s15_0101", 240), ("s16_0102", 240)]

    computed[:] = []
    fresh = evaluate_spotting(data, [spotter], tmp_path / "fresh", track=track)
    assert sorted(set(computed)) == ["006_1", "007_1", "s15_0101", "s16_0102"]
    pd.testing.assert_frame_equal(resumed.predictions["flow-roi"], fresh.predictions["flow-roi"])
    computed[:] = []
    evaluate_spotting(data, [spotter], tmp_path, track=FaceTrackConfig(size=96))
    assert sorted(set(computed)) == ["006_1", "007_1", "s15_0101", "s16_0102"], "other tracking: nothing reused"


def test_the_spot_eval_command_with_spot_then_recognise(demo_folder, tmp_path, capsys):
    out = tmp_path / "eval"
    status = main(["spot-eval", "--dataset", "casme_sq", "--root", str(roots(demo_folder)["casme_sq"]),
                   "--spotter", "flow-roi", "--recognise", "flowgrid", "--set", "track.size=112", "--set",
                   "flow_roi.p_grid=[0.3]", "--set", "flow_roi.flow.size=64", "--out", str(out), "--quiet"])

    assert status == 0
    assert "## Spot-then-recognise (method flowgrid)" in capsys.readouterr().out
    recognised = read_str_csv(out / "str_predictions_flow-roi.csv")
    assert set(recognised["emotion"]) <= {"negative", "positive", "unrecognised"}
    spotted = pd.read_csv(out / "predictions_flow-roi_full.csv")
    assert len(recognised) == (spotted["type"] == "micro").sum()
    scores = pd.read_csv(out / "str_scores.csv")
    assert set(scores["rule"]) == {"strs", "one-to-one"}
    assert (scores["strs"] - scores["spotting_f1"] * scores["analysis_f1"]).abs().max() < 1e-12
    assert json.loads((out / "results.json").read_text())["recognition"]["classes"] == {
        "flow-roi": {"casme_sq": ["negative", "positive"]}}


def test_the_spot_demo_command_reuses_its_videos_and_warns_about_a_random_model(demo_folder, capsys, monkeypatch):
    def no_writing(*args, **kwargs):
        raise AssertionError("the demo must reuse the videos already written")

    monkeypatch.setattr(evaluate_module, "write_long_videos", no_writing)
    fast = [*TINY, "evaluation.spotters=[micronbert]", "evaluation.micronbert.p_grid=[0.3]"]
    options = [item for value in fast for item in ("--set", value)]

    assert main(["spot-demo", "--out", str(demo_folder), "--quick", "--quiet", *options]) == 0

    printed = capsys.readouterr().out
    assert "SPOTTER MICRONBERT HAS NO PRE-TRAINED WEIGHTS" in printed and "RANDOMLY INITIALISED" in printed
    assert "| micronbert | samm_lv |" in printed
    assert "| micronbert | samm_lv | happiness, surprise | strs |" in printed, "SAMM-LV emotions: the micro sheet"
    assert (demo_folder / "predictions_micronbert.csv").is_file()
    different = [item for value in [*TINY, "casme_sq.seed=3"] for item in ("--set", value)]
    assert main(["spot-demo", "--out", str(demo_folder), "--quick", "--quiet", *different]) == 2
    assert "another configuration" in capsys.readouterr().err


def test_configurations(capsys):
    with pytest.raises(ValueError, match="spotters must be distinct names"):
        SpotEvalConfig(spotters=("optical",))
    with pytest.raises(ValueError, match="unknown method 'flowgird'"):
        SpotEvalConfig(recognise="flowgird")
    with pytest.raises(ValueError, match="given twice"):
        SpotEvalConfig.from_dict({"datasets": [{"name": "casme_sq", "root": "a"}, {"name": "casme_sq", "root": "b"}]})
    with pytest.raises(ValueError, match="evaluation.datasets must be empty"):
        SpotDemoConfig.for_run(None, ["evaluation.datasets=[{name: casme_sq, root: x}]"])
    partial = SpotDemoConfig.for_run(None, ["samm_lv.duration_s=5"])
    assert partial.samm_lv.layout == "samm_lv" and partial.samm_lv.duration_s == 5
    assert partial.samm_lv.fps is None and partial.evaluation.spotters == ("flow-roi", "micronbert")
    models = [SpotEvalConfig(spotters=("micronbert",)).build_spotters()[0].model for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True))
    quick, full = SpotDemoConfig.for_run(quick=True), SpotDemoConfig.for_run()
    assert quick.casme_sq.n_frames < full.casme_sq.n_frames and quick.samm_lv.n_frames < full.samm_lv.n_frames

    args = build_parser().parse_args(["spot-eval", "--dataset", "casme_sq", "--root", "a", "--dataset", "samm_lv",
                                      "--root", "b", "--spotter", "flow-roi", "--spotter", "micronbert", "--weights",
                                      "w", "--out", "o"])
    config = command_config(args)
    assert [(d.name, d.root) for d in config.datasets] == [("casme_sq", "a"), ("samm_lv", "b")]
    assert config.spotters == ("flow-roi", "micronbert") and config.micronbert.model.weights == "w"
    assert main(["spot-eval", "--dataset", "casme_sq", "--out", "o"]) == 2
    assert "one --root per --dataset" in capsys.readouterr().err
    assert main(["spot-eval", "--out", "o"]) == 2
    assert "give the datasets to spot" in capsys.readouterr().err
