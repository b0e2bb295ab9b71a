"""Named configurations and the ``create_model`` entry point (timm-style)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from .checkpoint import load, read_config
from .config import CONFIGS, ModelConfig, named_config
from .micronbert import MicronBERT


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return list(CONFIGS)


def create_model(name: str, **overrides: Any) -> MicronBERT:
    """Build the named μ-BERT (``official-small``, ``base``, ``tiny``) with any config field overridden,
    e.g. ``create_model("tiny", dma_query="swapped", agreement="dino", num_classes=3)``."""
    return MicronBERT(named_config(name, **overrides))


@dataclass(frozen=True)
class ModelInitConfig(Config):
    """The ``model`` section of a run: the named configuration ``name`` with field ``overrides``, or the
    ``micronbert.save`` folder ``weights`` to start from (its configuration, with ``overrides`` applied on top;
    they must not change a tensor's shape)."""

    name: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.weights is None:
            named_config(self.name, **self.overrides)

    def build(self, pretrained: bool = True) -> MicronBERT:
        """The model: loaded from ``weights`` when given and ``pretrained``, else a new one of ``name``."""
        if not (pretrained and self.weights):
            return create_model(self.name, **self.overrides)
        model = load(self.weights)
        if not self.overrides:
            return model
        rebuilt = MicronBERT(model.config.replace(**self.overrides))
        try:
            rebuilt.load_state_dict(model.state_dict())
        except RuntimeError as err:
            raise ValueError(f"{self.weights}: model overrides {self.overrides} do not fit the checkpoint's "
                             f"weights ({err})") from None
        return rebuilt

    def model_config(self) -> ModelConfig:
        """The :class:`ModelConfig` the model will have (read from ``weights`` without loading the tensors)."""
        if self.weights:
            return read_config(self.weights).replace(**self.overrides)
        return named_config(self.name, **self.overrides)
