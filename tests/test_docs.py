"""The commands the README and docs/ show are ones micronbert's command line accepts, with files that exist."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from micronbert.cli import build_parser
from micronbert.train.finetune import FinetuneConfig
from micronbert.train.pretrain import PretrainConfig

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```bash\n(.*?)```", re.S)


def shown_commands(path: Path) -> list[list[str]]:
    """The arguments after ``micronbert`` (or ``-m micronbert``) of every command in the file's bash blocks."""
    commands = []
    for block in FENCE.findall(path.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            for start, word in enumerate(words):
                if word == "micronbert" and (start == 0 or words[start - 1] == "-m"):
                    commands.append(words[start + 1:])
                    break
    return commands


def test_the_documents_show_commands():
    assert len(shown_commands(ROOT / "README.md")) >= 5
    assert len(shown_commands(ROOT / "docs" / "REPRODUCE.md")) >= 8


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_every_shown_command_parses_and_names_existing_configs(path, capsys):
    for argv in shown_commands(path):
        shown = f"{path.name}: `micronbert {' '.join(argv)}`"
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as stop:
            assert stop.code == 0, f"{shown} is refused: {capsys.readouterr().err}"
            continue
        if getattr(args, "config", None):
            config = ROOT / args.config
            assert config.is_file(), f"{shown} names a missing {args.config}"
            if args.command == "pretrain":
                PretrainConfig.from_yaml(config, args.overrides)
            elif args.command in ("finetune", "evaluate"):
                FinetuneConfig.from_yaml(config)
