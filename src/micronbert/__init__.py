"""micronbert: an open, reproducible implementation of Micron-BERT (μ-BERT, CVPR 2023) for facial
micro-expression recognition."""
from .model import (MicronBERT, ModelConfig, convert_official, create_model, list_models, load,
                    load_official_checkpoint, save)

__version__ = "0.1.0"

__all__ = ["MicronBERT", "ModelConfig", "convert_official", "create_model", "list_models", "load",
           "load_official_checkpoint", "save", "__version__"]
