"""The input layer: what each recognition method reads, produced once per sample and cached."""
from __future__ import annotations

from micronbert.data.inputs.cache import CacheStats, InputCache, default_cache_dir
from micronbert.data.inputs.layer import InputBatch, build_inputs
from micronbert.data.inputs.spec import FLOW_CELL_CHANNELS, FLOW_CHANNELS, INPUT_KINDS, REGIONS, InputSpec

__all__ = ["FLOW_CELL_CHANNELS", "FLOW_CHANNELS", "INPUT_KINDS", "REGIONS", "CacheStats", "InputBatch", "InputCache",
           "InputSpec", "build_inputs", "default_cache_dir"]
