"""Public entry points for reading micro-expression datasets: ``micronbert.datasets.load``.

See ``micronbert.data.datasets`` for the readers and ``micronbert.data.table`` for the table.
"""
from __future__ import annotations

from micronbert.data.datasets import (
    ClassScheme,
    DatasetWarning,
    LoadReport,
    available,
    available_schemes,
    get_scheme,
    load,
    load_with_report,
)
from micronbert.data.table import TABLE_COLUMNS, load_table, save_table, validate_table

__all__ = [
    "TABLE_COLUMNS",
    "ClassScheme",
    "DatasetWarning",
    "LoadReport",
    "available",
    "available_schemes",
    "get_scheme",
    "load",
    "load_table",
    "load_with_report",
    "save_table",
    "validate_table",
]
