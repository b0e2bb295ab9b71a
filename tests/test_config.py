"""One configuration system: YAML files, --set overrides, typed sections, and every command reading them alike."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from micronbert.cli import build_parser, command_config
from micronbert.config import Config, apply_overrides, merge, parse_yaml, read_yaml_file

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Optim(Config):
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)


@dataclass(frozen=True)
class Run(Config):
    optim: Optim = field(default_factory=Optim)
    epochs: int = 10
    name: str | None = None
    tags: tuple[str, ...] = ()


def test_numbers_written_without_a_dot_are_numbers():
    assert parse_yaml("lr: 1e-3") == {"lr": 1e-3}
    assert parse_yaml("lr: 5E-5\nn: 3") == {"lr": 5e-5, "n": 3}
    assert parse_yaml("lr: '1e-3'") == {"lr": "1e-3"}


def test_sections_are_built_typed_and_wrong_values_are_named():
    run = Run.from_dict({"optim": {"lr": 1, "betas": [0.8, 0.9]}, "epochs": 3, "tags": ["a", "b"]})
    assert run.optim == Optim(lr=1.0, betas=(0.8, 0.9)) and isinstance(run.optim.lr, float)
    assert run.tags == ("a", "b") and Run.from_dict(run.to_dict()) == run
    for data, message in [({"optim": {"lr": "1e-3"}}, "optim.lr: expected a number, got '1e-3'"),
                          ({"epochs": 2.5}, "epochs: expected an integer, got 2.5"),
                          ({"epochs": True}, "epochs: expected an integer, got True"),
                          ({"optim": {"betas": [0.9]}}, r"optim.betas: expected 2 values"),
                          ({"optim": {"lrr": 1}}, r"optim: unknown option\(s\) lrr; known: lr, betas"),
                          ({"optim": 3}, "optim: expected a mapping"),
                          ({"name": 5}, "name: expected a string, got 5")]:
        with pytest.raises(ValueError, match=message):
            Run.from_dict(data)


def test_overrides_file_and_options_apply_in_order(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr: 1e-2\nepochs: 4\n")
    assert Run.from_yaml(path).optim.lr == 1e-2
    config = Run.from_options(path, ["optim.lr=3e-4", "tags=[x]"], {"epochs": 7}, base={"epochs": 1, "name": "b"})
    assert (config.optim.lr, config.epochs, config.name, config.tags) == (3e-4, 7, "b", ("x",))
    path.write_text("epochs: ten\n")
    with pytest.raises(ValueError, match="run.yaml: epochs: expected an integer, got 'ten'"):
        Run.from_yaml(path)
    with pytest.raises(ValueError, match="must read key=value"):
        apply_overrides({}, ["optim.lr"])
    with pytest.raises(ValueError, match="epochs is not a section"):
        apply_overrides({"epochs": 3}, ["epochs.x=1"])
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


def test_yaml_files_are_named_in_their_errors(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="c.yaml: expected a mapping"):
        read_yaml_file(path)
    path.write_text("a: [")
    with pytest.raises(ValueError, match="c.yaml: not valid YAML"):
        read_yaml_file(path)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        read_yaml_file(tmp_path / "missing.yaml")
    path.write_text("")
    assert read_yaml_file(path) == {}


@pytest.mark.parametrize(("command", "extra", "lr_key", "read"), [
    ("pretrain", ["--set", "data.sources=[frames]"], "optim.lr", lambda c: c.optim.lr),
    ("finetune", ["--table", "t.csv", "--out", "o"], "optim.lr", lambda c: c.optim.lr),
    ("evaluate", ["--table", "t.csv", "--out", "o"], "optim.lr", lambda c: c.optim.lr),
    ("demo", [], "finetune.optim.lr", lambda c: c.finetune_config(0).optim.lr),
])
def test_every_command_reads_1e_3_as_a_number_from_yaml_and_set(tmp_path: Path, command, extra, lr_key, read):
    *sections, leaf = lr_key.split(".")
    text = "".join(f"{'  ' * depth}{name}:\n" for depth, name in enumerate(sections)) + f"{'  ' * len(sections)}" \
        f"{leaf}: 1e-3\n"
    path = tmp_path / "run.yaml"
    path.write_text(text)
    config = command_config(build_parser().parse_args([command, "--config", str(path), *extra]))
    assert read(config) == 1e-3 and isinstance(read(config), float)
    changed = command_config(build_parser().parse_args([command, "--config", str(path), "--set", f"{lr_key}=2e-4",
                                                        *extra]))
    assert read(changed) == 2e-4
    path.write_text(text.replace("1e-3", "'1e-3'"))
    with pytest.raises(ValueError, match="run.yaml: .*lr: expected a number, got '1e-3'"):
        command_config(build_parser().parse_args([command, "--config", str(path), *extra]))


def test_shipped_configs_load():
    from micronbert.demo import DemoConfig
    from micronbert.train.finetune import FinetuneConfig
    from micronbert.train.pretrain import PretrainConfig

    for path, kind in [("demo.yaml", DemoConfig), ("demo_paper.yaml", DemoConfig),
                       ("finetune_tiny.yaml", FinetuneConfig), ("finetune_official_small.yaml", FinetuneConfig),
                       ("pretrain_tiny.yaml", PretrainConfig), ("pretrain_official_small.yaml", PretrainConfig)]:
        assert isinstance(kind.from_yaml(REPO / "configs" / path), kind)
    assert FinetuneConfig.from_yaml(REPO / "configs" / "finetune_tiny.yaml") == FinetuneConfig()
