import subprocess
import sys

import pandas as pd
import pytest

from micronbert.cli import build_parser, main


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
