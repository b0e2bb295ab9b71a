"""Recognition training of μ-BERT: configuration, both modes, weights with overrides."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from micronbert.data.labelled_pairs import load_labelled_pairs
from micronbert.model import create_model, save
from micronbert.train.augment import AugmentConfig
from micronbert.train.finetune import (
    FinetuneConfig,
    build_model,
    cached_pair_tokens,
    class_weights,
    predict_tokens,
    train_on_pairs,
    train_on_tokens,
)
from tests.recognition_fixtures import recognition_config, synthetic_casme2_table

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def casme2_table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return synthetic_casme2_table(tmp_path_factory.mktemp("synthetic"), subjects=3)


def test_yaml_config_is_read_and_checked(tmp_path: Path) -> None:
    config = FinetuneConfig.from_yaml(REPO / "configs" / "finetune_tiny.yaml")
    assert config.model.name == "tiny" and config.train.mode == "frozen"
    assert isinstance(config.augment, AugmentConfig) and config.augment.crop_scale == (0.85, 1.0)
    assert FinetuneConfig.from_dict(config.to_dict()) == config
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  mode: frozen\n  epochz: 3\n")
    with pytest.raises(ValueError, match="bad.yaml.*train.*epochz"):
        FinetuneConfig.from_yaml(bad)
    with pytest.raises(ValueError, match="mode"):
        recognition_config({"train.mode": "linear"})
    with pytest.raises(ValueError, match="crop_scale"):
        recognition_config({"augment.crop_scale": [0.5, 1.5]})


def test_a_learning_rate_written_1e_3_is_a_number(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr: 1e-3\n  encoder_lr: 5e-5\n")
    config = FinetuneConfig.from_yaml(path)
    assert config.optim.lr == 1e-3 and config.optim.encoder_lr == 5e-5
    path.write_text("optim:\n  lr: '1e-3'\n")
    with pytest.raises(ValueError, match="run.yaml: optim.lr: expected a number, got '1e-3'"):
        FinetuneConfig.from_yaml(path)


def test_class_weights_are_inverse_frequency() -> None:
    weights = class_weights(np.array([0, 0, 0, 1, 3, 3]), 4)
    assert weights.tolist() == pytest.approx([6 / 9, 6 / 3, 0.0, 6 / 6])


def _changed(before: dict[str, torch.Tensor], model: torch.nn.Module, prefix: str) -> bool:
    return any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if k.startswith(prefix))


def test_modes_train_the_right_parts(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    config = recognition_config({"train.epochs": 1, "train.batch_size": 6, "cache.dir": str(tmp_path)})
    pairs = load_labelled_pairs(casme2_table, 64)
    model = build_model(config, 5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_on_pairs(model, pairs.onsets, pairs.apexes, pairs.labels, config, mode="finetune")
    assert _changed(before, model, "backbone.") and _changed(before, model, "att.") and _changed(before, model, "head.")

    model = build_model(config, 5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    onset_tokens, apex_tokens, stats = cached_pair_tokens(model, pairs, config)
    assert stats.encoded == 2 * len(pairs)
    train_on_tokens(model, onset_tokens, apex_tokens, pairs.labels, config)
    assert not _changed(before, model, "backbone.")
    assert _changed(before, model, "att.") and _changed(before, model, "head.")


def test_frozen_training_fits_the_training_set(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    config = recognition_config({"train.epochs": 60, "train.batch_size": 12, "optim.lr": 3e-3,
                                 "train.head_dropout": 0.0, "cache.dir": str(tmp_path)})
    pairs = load_labelled_pairs(casme2_table, 64)
    model = build_model(config, 5)
    onset_tokens, apex_tokens, _ = cached_pair_tokens(model, pairs, config)
    chance = (predict_tokens(model, onset_tokens, apex_tokens).argmax(1) == pairs.labels).mean()
    losses = train_on_tokens(model, onset_tokens, apex_tokens, pairs.labels, config)
    fitted = (predict_tokens(model, onset_tokens, apex_tokens).argmax(1) == pairs.labels).mean()
    assert fitted >= 0.9 > chance
    assert len(losses) == 60 and losses[-1] < 0.5 * losses[0]  # mean training loss of each epoch


def test_weights_with_overrides_keep_the_weights(tmp_path: Path) -> None:
    source = create_model("tiny")
    weights = save(source, tmp_path / "weights")
    config = {"model.weights": str(weights), "model.overrides": {"dma_query": "swapped"}}
    model = build_model(recognition_config(config), 3)
    assert model.att.query == "swapped" and model.config.num_classes == 3
    assert torch.equal(model.backbone.patch_embed.proj.weight, source.backbone.patch_embed.proj.weight)
    with pytest.raises(ValueError, match="do not fit"):
        build_model(recognition_config({**config, "model.overrides": {"dim": 64, "heads": 2, "dma_heads": 1}}), 3)
