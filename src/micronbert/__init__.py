"""micronbert: an open, reproducible implementation of Micron-BERT (μ-BERT, CVPR 2023) for facial
micro-expression analysis, and the harness in which the field's systems run side by side.

Models::

    model = micronbert.create_model("tiny")          # or "official-small", "base"; fields can be overridden
    micronbert.save(model, "runs/tiny"); model = micronbert.load("runs/tiny")

Runs (each takes the same configuration a YAML file gives the command line)::

    micronbert.pretrain(micronbert.PretrainConfig.from_yaml("configs/pretrain_tiny.yaml"))
    samples, classes = micronbert.load_samples(table="data/prepared/table.csv")
    config = micronbert.FinetuneConfig.from_yaml("configs/finetune_tiny.yaml")
    result = micronbert.evaluate(samples, "micronbert", config, "reports/loso", classes)   # result.metrics["uf1"]
    micronbert.finetune(samples, config, "runs/recognizer", classes)
"""
from __future__ import annotations

import importlib
from typing import Any

from .model import (
    MicronBERT,
    ModelConfig,
    convert_official,
    create_model,
    list_models,
    load,
    load_official_checkpoint,
    save,
)

__version__ = "0.1.0"

# Runs import the training and evaluation stack; they load on first use so that `import micronbert` stays light.
_LAZY = {
    "pretrain": "micronbert.train.pretrain", "PretrainConfig": "micronbert.train.pretrain",
    "finetune": "micronbert.evaluation.runner", "evaluate": "micronbert.evaluation.runner",
    "FinetuneConfig": "micronbert.train.finetune", "load_samples": "micronbert.data.prepare",
    "available_methods": "micronbert.evaluation.methods",
}

__all__ = ["MicronBERT", "ModelConfig", "convert_official", "create_model", "list_models", "load",
           "load_official_checkpoint", "save", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'micronbert' has no attribute {name!r}")
