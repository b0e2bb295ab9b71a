"""Devices: what a configuration's device names, and runs on an explicit device giving the default's results."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from micronbert.data.datasets import get_scheme
from micronbert.evaluation.runner import evaluate
from micronbert.train.device import autocast_for, pick_device, uses_bf16
from tests.recognition_fixtures import SCHEME, recognition_config, synthetic_casme2_table


def test_auto_picks_an_accelerator_when_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="device cuda was asked for but no CUDA GPU is available"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda, mps, got 'tpu'"):
        pick_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto", 1) == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("mps")


def test_bf16_autocast_only_on_a_cuda_gpu() -> None:
    assert uses_bf16(torch.device("cuda", 0), True)
    assert not uses_bf16(torch.device("cuda", 0), False) and not uses_bf16(torch.device("cpu"), True)
    with autocast_for(torch.device("cpu"), True):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.parametrize("mode", ["finetune", "frozen"])
def test_evaluate_on_an_explicit_cpu_device_gives_the_default_results(mode: str, tmp_path) -> None:
    table: pd.DataFrame = synthetic_casme2_table(tmp_path / "data", subjects=3)
    names = list(get_scheme(SCHEME).classes)
    base = {"train.epochs": 1, "train.mode": mode, "cache.dir": str(tmp_path / "cache")}
    default = evaluate(table, "micronbert", recognition_config(base), tmp_path / "auto", names)
    explicit = evaluate(table, "micronbert", recognition_config({**base, "train.device": "cpu"}), tmp_path / "cpu",
                        names)
    assert json.dumps(explicit.metrics, sort_keys=True) == json.dumps(default.metrics, sort_keys=True)
    with pytest.raises(ValueError, match="train.device must be one of"):
        recognition_config({"train.device": "gpu"})
