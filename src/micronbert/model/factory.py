"""Named configurations and the ``create_model`` entry point (timm-style)."""
from __future__ import annotations

from typing import Any

from .config import CONFIGS, named_config
from .micronbert import MicronBERT


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return list(CONFIGS)


def create_model(name: str, **overrides: Any) -> MicronBERT:
    """Build the named μ-BERT (``official-small``, ``base``, ``tiny``) with any config field overridden,
    e.g. ``create_model("tiny", dma_query="swapped", agreement="dino", num_classes=3)``."""
    return MicronBERT(named_config(name, **overrides))
