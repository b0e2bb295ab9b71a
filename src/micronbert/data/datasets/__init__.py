"""Dataset readers: every supported database as the common sample table.

``load(name, root, scheme=None, ...)`` reads a dataset straight from its original folders and
annotation files (see DATASETS.md) and returns the table described in ``micronbert.data.table``;
``load_with_report`` also returns what was dropped and why. Names: see ``available()``.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from micronbert.data.datasets import casme2, casme3, casme_sq, fourdme, manifest, megc2019, mmew, samm, smic
from micronbert.data.datasets.apex import largest_change_apex, midpoint_apex, resolve_apex
from micronbert.data.datasets.build import MISSING_APEX_CHOICES, LoadOptions, RawSample, build_table
from micronbert.data.datasets.schemes import ClassScheme, apply_scheme, available_schemes, get_scheme, normalise_emotion
from micronbert.data.table import LoadReport, validate_table

__all__ = [
    "DatasetWarning",
    "ClassScheme",
    "LoadOptions",
    "LoadReport",
    "MISSING_APEX_CHOICES",
    "RawSample",
    "Reader",
    "available",
    "available_schemes",
    "build_table",
    "get_reader",
    "get_scheme",
    "largest_change_apex",
    "load",
    "load_with_report",
    "midpoint_apex",
    "read_dataset",
    "root_from_arguments",
    "ROOT_ARGUMENT_HELP",
    "normalise_emotion",
    "resolve_apex",
]


class DatasetWarning(UserWarning):
    """Emitted once per load when samples were dropped or repaired; details are in the LoadReport."""


@dataclass(frozen=True)
class Reader:
    """A registered dataset reader.

    read: ``read(root, options, report, **reader_options) -> table`` (labels unset unless the
    source carries them). default_scheme: the scheme used for this dataset's usual protocol.
    fixed_scheme: labels come with the data under this scheme (MEGC 2019 GT); other schemes are
    refused. any_scheme: any shipped scheme may be applied (users' own manifests).
    """

    name: str
    read: Callable[..., pd.DataFrame]
    description: str
    default_scheme: str | None = None
    fixed_scheme: str | None = None
    any_scheme: bool = False


_READERS: Mapping[str, Reader] = {
    reader.name: reader
    for reader in (
        Reader("casme2", casme2.read, "CASME II (CASME2_RAW_selected, Cropped or CASME2-RAW; coding sheet)",
               "casme2-5class"),
        Reader("samm", samm.read, "SAMM micro-movement clips (SAMM_Micro_FACS_Codes)", "samm-5class"),
        Reader("smic", smic.read, "SMIC HS/VIS/NIR (labels from folders; SMIC-E sheets when present)", "smic-3class"),
        Reader("casme3", casme3.read, "CAS(ME)^3 Part A micro-expressions (v2 or v1 JpgIndex sheet)", "casme3-7class"),
        Reader("casme3c", casme3.read_part_c, "CAS(ME)^3 Part C mock-crime micro-expressions", "casme3-4class"),
        Reader("casme_sq", casme_sq.read, "CAS(ME)^2 (code_final sheet; micro-expressions by default)"),
        Reader("mmew", mmew.read, "MMEW micro-expressions (MMEW_Micro_Exp sheet + emotion folders)"),
        Reader("4dme", fourdme.read, "4DME micro-expressions (gray_micro frames)"),
        Reader("megc2019", megc2019.read, "MEGC 2019 composite (GT joined with CASME II, SAMM, SMIC-HS)",
               megc2019.SCHEME, fixed_scheme=megc2019.SCHEME),
        Reader("manifest", manifest.read, "generic CSV manifest for users' own data", any_scheme=True),
    )
}


def available() -> list[str]:
    """Names accepted by ``load``."""
    return list(_READERS)


_NAMED_ROOT = re.compile(r"^(\w+)=(.+)$")
ROOT_ARGUMENT_HELP = ("the dataset's folder as downloaded; for megc2019 repeat as NAME=PATH: casme2=DIR samm=DIR "
                      "smic=DIR gt=FILE (the official combined_3class_gt.csv)")


def root_from_arguments(values: str | Sequence[str]) -> str | dict[str, str]:
    """The ``root`` of :func:`load` from command-line values: one folder (or file) as it is, or ``NAME=PATH`` entries
    as a mapping, e.g. ``casme2=/data/CASME2 samm=/data/SAMM smic=/data/SMIC gt=/data/combined_3class_gt.csv``
    for ``megc2019``. ``ValueError`` names a value that mixes the two forms or repeats a name."""
    values = [values] if isinstance(values, str) else list(values)
    if not values:
        raise ValueError("no root given")
    named = [_NAMED_ROOT.match(value) for value in values]
    if len(values) == 1 and named[0] is None:
        return values[0]
    roots: dict[str, str] = {}
    for value, match in zip(values, named):
        if match is None:
            raise ValueError(f"root {value!r}: several roots must each read NAME=PATH (e.g. casme2=/data/CASME2)")
        name, path = match.groups()
        if name in roots:
            raise ValueError(f"root {name!r} is given twice")
        roots[name] = path
    return roots


def get_reader(name: str) -> Reader:
    """The registered reader called ``name``; ValueError lists the names."""
    if name not in _READERS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(_READERS)}")
    return _READERS[name]


def load_with_report(
    name: str,
    root: str | Path | Mapping[str, str | Path],
    scheme: str | ClassScheme | None = None,
    *,
    check_frames: bool = True,
    missing_apex: str = "estimate",
    annotation: str | Path | None = None,
    fps: float | None = None,
    **reader_options: object,
) -> tuple[pd.DataFrame, LoadReport]:
    """Read dataset ``name`` from ``root`` into the sample table, with the report of drops and repairs.

    scheme: class scheme name (``available_schemes()``) for the ``label`` column; samples whose
        emotion the scheme leaves out are dropped. None leaves labels unset (MEGC 2019 and
        manifests keep the labels their files carry).
    check_frames: look the frames up on disk (False: annotation only, ``frames`` empty).
    missing_apex: ``estimate`` | ``midpoint`` | ``drop`` for samples without a usable apex.
    annotation: the annotation file, when searching ``root`` by name pattern is not wanted.
    fps: override the dataset's frame rate.
    reader_options: dataset-specific options (e.g. casme2 ``layout``, smic ``modality``/``source``,
        casme3 ``version``, casme3c ``position_base``, casme_sq ``expression_type``, megc2019
        ``source_options``).

    A DatasetWarning summarises drops and repairs; the report lists each one.
    """
    return _load_and_warn(name, root, scheme, _options(check_frames, missing_apex, annotation, fps), reader_options)


def _load_and_warn(
    name: str,
    root: str | Path | Mapping[str, str | Path],
    scheme: str | ClassScheme | None,
    options: LoadOptions,
    reader_options: Mapping[str, object],
) -> tuple[pd.DataFrame, LoadReport]:
    """``read_dataset`` plus the DatasetWarning; called directly by ``load`` and ``load_with_report`` only."""
    table, report = read_dataset(name, root, options, scheme, **reader_options)
    _warn_summary(name, table, report)
    return table, report


def _options(check_frames: bool, missing_apex: str, annotation: str | Path | None, fps: float | None) -> LoadOptions:
    return LoadOptions(
        check_frames=check_frames,
        missing_apex=missing_apex,
        annotation=Path(annotation).expanduser() if annotation is not None else None,
        fps=fps,
    )


def _warn_summary(name: str, table: pd.DataFrame, report: LoadReport) -> None:
    """One DatasetWarning, attributed to the caller of ``load`` / ``load_with_report``
    (stack: this function, ``_load_and_warn``, ``load`` or ``load_with_report``, caller)."""
    if report.dropped or report.warnings:
        warnings.warn(
            f"{name}: {len(table)} samples, {len(report.dropped)} dropped, {len(report.warnings)} warnings "
            "(see load_with_report for details)",
            DatasetWarning,
            stacklevel=4,
        )


def read_dataset(
    name: str,
    root: str | Path | Mapping[str, str | Path],
    options: LoadOptions,
    scheme: str | ClassScheme | None = None,
    **reader_options: object,
) -> tuple[pd.DataFrame, LoadReport]:
    """``load_with_report`` with options as a ``LoadOptions`` and no DatasetWarning (for composites)."""
    reader = get_reader(name)
    if reader.fixed_scheme is not None and scheme is not None and get_scheme(scheme).name != reader.fixed_scheme:
        raise ValueError(f"{name} labels come from its ground truth under {reader.fixed_scheme!r}; "
                         f"got scheme {scheme!r}")
    report = LoadReport(dataset=name)
    table = reader.read(root, options, report, **reader_options)
    if scheme is not None and reader.fixed_scheme is None:
        table = apply_scheme(table, scheme, report, check_datasets=not reader.any_scheme)
    validate_table(table)
    return table, report


def load(
    name: str,
    root: str | Path | Mapping[str, str | Path],
    scheme: str | ClassScheme | None = None,
    *,
    check_frames: bool = True,
    missing_apex: str = "estimate",
    annotation: str | Path | None = None,
    fps: float | None = None,
    **reader_options: object,
) -> pd.DataFrame:
    """Read dataset ``name`` from ``root`` into the sample table (options as in ``load_with_report``).

    For ``megc2019``, ``root`` maps ``casme2``, ``samm``, ``smic`` (and optionally ``gt``) to their
    folders, or is the GT file itself (then the table comes from the GT alone).
    """
    table, _ = _load_and_warn(name, root, scheme, _options(check_frames, missing_apex, annotation, fps), reader_options)
    return table
