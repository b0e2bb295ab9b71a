"""The evaluation core: folds, the registry of recognition methods, the resumable runner and its reports.

Importing the package registers every method: μ-BERT and the linear baselines (:mod:`.methods`), the network and
classical baselines (:mod:`.baseline_methods`).
"""
from __future__ import annotations

from micronbert.evaluation.baseline_methods import NetworkMethod, load_method, predict_pair, predict_samples
from micronbert.evaluation.methods import (
    METHODS,
    Method,
    available_methods,
    canonical_method_name,
    get_method,
    register_method,
)

__all__ = [
    "METHODS",
    "Method",
    "NetworkMethod",
    "available_methods",
    "canonical_method_name",
    "get_method",
    "load_method",
    "predict_pair",
    "predict_samples",
    "register_method",
]
