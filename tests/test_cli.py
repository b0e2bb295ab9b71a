import subprocess
import sys

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


def test_every_command_has_help():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        assert sub.format_help().strip(), name
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "micronbert", "models"], capture_output=True, text=True, check=True)
    assert "official-small" in done.stdout
