"""The command line: help, errors, and each command end to end on small synthetic data."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from micronbert.cli import build_parser, main
from micronbert.data.table import save_table
from micronbert.model import create_model, save
from tests.recognition_fixtures import SCHEME, synthetic_casme2_table


@pytest.fixture(scope="module")
def casme2_table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return synthetic_casme2_table(tmp_path_factory.mktemp("synthetic"), subjects=3)


def test_models_lists_every_named_configuration(capsys):
    assert main(["models"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == ["official-small", "base", "tiny"]


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["convert-official", str(tmp_path / "missing.pth"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("micronbert convert-official: error:") and "missing.pth" in err


def test_every_command_and_option_has_help():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    undocumented = [f"{name} {action.dest}" for name, sub in commands.items() for action in sub._actions
                    if not action.help]
    assert undocumented == []
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_synth_draws_only_the_classes_asked_for(tmp_path, capsys):
    out = tmp_path / "synthetic"
    assert main(["synth", str(out), "--subjects", "2", "--clips-per-subject", "3", "--size", "32", "--videos", "0",
                 "--classes", "surprise, others"]) == 0
    truth = pd.read_csv(out / "CASME2" / "synthetic_ground_truth.csv")
    assert truth["objective_class"].value_counts().to_dict() == {"surprise": 3, "others": 3}
    with pytest.raises(SystemExit):
        main(["synth", str(tmp_path / "other"), "--classes", "positive,fear"])
    assert "unknown class(es) ['fear']; choose from positive,surprise,negative,others" in capsys.readouterr().err


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "micronbert", "models"], capture_output=True, text=True, check=True)
    assert "official-small" in done.stdout


def test_evaluate_command_line(casme2_table: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    table_file = save_table(casme2_table, tmp_path / "table.csv")
    assert main(["evaluate", "--table", str(table_file), "--scheme", SCHEME, "--method", "framediff",
                 "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    assert "UF1" in capsys.readouterr().out
    assert (tmp_path / "cli" / "predictions_megc.txt").is_file()


def test_finetune_command_line(casme2_table: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    table_file = save_table(casme2_table, tmp_path / "table.csv")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"train:\n  epochs: 1\n  frozen_train: head\ncache:\n  dir: {tmp_path / 'cache'}\n")
    pretrained = save(create_model("tiny"), tmp_path / "pretrained")
    assert main(["finetune", "--table", str(table_file), "--scheme", SCHEME, "--config", str(config_file),
                 "--mode", "finetune", "--weights", str(pretrained), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr()
    assert "epochs: 100%" in printed.err and "loss=" in printed.err  # the progress bar over epochs
    assert "training_loss.png" in printed.out
    saved = json.loads((tmp_path / "out" / "classes.json").read_text())
    assert saved["config"]["train"]["mode"] == "finetune" and saved["config"]["train"]["epochs"] == 1
    assert saved["config"]["model"]["weights"] == str(pretrained)
    assert main(["finetune", "--table", str(table_file), "--scheme", SCHEME, "--config", str(config_file),
                 "--weights", str(tmp_path / "no_such_model"), "--out", str(tmp_path / "out2")]) == 2
    assert "no_such_model" in capsys.readouterr().err
    assert main(["finetune", "--out", str(tmp_path / "x")]) == 2
    assert "either --table or --dataset" in capsys.readouterr().err


def test_synth_long_writes_videos_the_spotting_reader_reads_back(tmp_path, capsys):
    from micronbert.data.synthetic import read_long_ground_truth
    from micronbert.spotting import read_intervals

    out = tmp_path / "long"
    assert main(["synth", str(out), "--long", "--duration", "20", "--subjects", "1", "--size", "48", "--quiet",
                 "--set", "write_mp4=false"]) == 0
    assert "long casme_sq video(s) of 600 frames at 30 fps" in capsys.readouterr().out
    truth = read_long_ground_truth(out)
    intervals = read_intervals("casme_sq", out)
    in_sheet = truth[truth["in_sheet"]]
    assert len(intervals) == len(in_sheet) > 0
    assert sorted(intervals["onset"].astype(int)) == sorted(in_sheet["onset"].astype(int))
    assert main(["synth", str(tmp_path / "x"), "--long", "--video-frames", "10"]) == 2
    assert "--video-frames do not apply to --long" in capsys.readouterr().err


def test_prepare_flow_images_writes_a_table_evaluate_reads(tmp_path, capsys):
    from micronbert.data.table import load_table
    from tests.data.flow_image_fixtures import SAMPLES, build_flat, build_loso_tree, write_official_gt

    flat = build_flat(tmp_path)
    gt = write_official_gt(tmp_path / "combined_3class_gt.csv")
    assert main(["prepare", "flow-images", "--root", str(flat), "--root", f"gt={gt}", "--out",
                 str(tmp_path / "flat_out")]) == 0
    printed = capsys.readouterr().out
    assert "flow images, flat layout" in printed and f"{len(SAMPLES)} samples ->" in printed
    table = load_table(tmp_path / "flat_out" / "table.csv")
    assert len(table) == len(SAMPLES) and table["image"].notna().all()
    tree = build_loso_tree(tmp_path / "tree")
    assert main(["prepare", "flow-images", "--root", str(tree), "--out", str(tmp_path / "tree_out")]) == 0
    assert len(load_table(tmp_path / "tree_out" / "table.csv")) == len(SAMPLES)
    assert main(["prepare", "flow-images", "--root", str(tree), "--root", str(flat), "--out", str(tmp_path / "x")]) == 2
    assert "one image folder and at most one gt=FILE" in capsys.readouterr().err


def test_finetune_and_predict_a_baseline_from_the_command_line(casme2_table, tmp_path, capsys):
    table_file = save_table(casme2_table, tmp_path / "table.csv")
    config = tmp_path / "ststnet.yaml"
    config.write_text(f"baselines:\n  recipes: {{ststnet: {{epochs: 2}}}}\n  cache_dir: {tmp_path / 'inputs'}\n")
    assert main(["finetune", "--table", str(table_file), "--scheme", SCHEME, "--method", "ststnet", "--config",
                 str(config), "--out", str(tmp_path / "ststnet")]) == 0
    capsys.readouterr()
    frames = casme2_table.iloc[0]["frames"]
    assert main(["predict", "--model", str(tmp_path / "ststnet"), "--onset", frames[0], "--apex", frames[-1],
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["method"] == "ststnet" and abs(sum(printed["probabilities"].values()) - 1) < 1e-5
    assert main(["predict", "--model", str(tmp_path / "ststnet"), "--table", str(table_file), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(casme2_table) and {row["predicted"] for row in rows} <= set(printed["probabilities"])
    assert main(["predict", "--model", str(tmp_path / "ststnet"), "--clip", frames[0]]) == 2
    assert "predicts (onset, apex) pairs" in capsys.readouterr().err
