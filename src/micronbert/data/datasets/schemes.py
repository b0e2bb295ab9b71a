"""Class schemes (emotion -> class index), shipped as data in ``schemes.yaml``."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from types import MappingProxyType

import pandas as pd
import yaml

from micronbert.data.table import LoadReport, sample_key

SCHEME_FILE = "schemes.yaml"
GENERIC_DATASETS: frozenset[str] = frozenset({"manifest"})
_EMOTION_SYNONYMS: Mapping[str, str] = MappingProxyType({"other": "others"})


@dataclass(frozen=True)
class ClassScheme:
    """A named mapping from normalised emotion names to class indices."""

    name: str
    description: str
    classes: tuple[str, ...]
    members: Mapping[str, int]
    datasets: frozenset[str]
    exclude: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def label_of(self, emotion: str | None, dataset: str) -> int | None:
        """Class index of ``emotion`` for a sample of ``dataset``; None when the scheme drops it."""
        if emotion is None:
            return None
        if emotion in self.exclude.get(dataset, frozenset()):
            return None
        return self.members.get(emotion)

    def applies_to(self, dataset: str) -> bool:
        """Whether the scheme is meant for samples of ``dataset``."""
        return dataset in self.datasets or dataset in GENERIC_DATASETS


def normalise_emotion(value: object) -> str | None:
    """Lower-case, trimmed emotion name with spelling variants folded (``Other`` -> ``others``)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = re.sub(r"\s+", " ", str(value)).strip().lower()
    if not text or text in {"nan", "none"}:
        return None
    return _EMOTION_SYNONYMS.get(text, text)


@lru_cache(maxsize=1)
def _all_schemes() -> Mapping[str, ClassScheme]:
    text = resources.files(__package__).joinpath(SCHEME_FILE).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{SCHEME_FILE}: expected a mapping of scheme names")
    return MappingProxyType({name: _parse_scheme(name, spec) for name, spec in data.items()})


def _parse_scheme(name: str, spec: object) -> ClassScheme:
    where = f"{SCHEME_FILE}, scheme {name!r}"
    if not isinstance(spec, dict) or not isinstance(spec.get("classes"), list):
        raise ValueError(f"{where}: needs a 'classes' list")
    classes: list[str] = []
    members: dict[str, int] = {}
    for index, entry in enumerate(spec["classes"]):
        if not isinstance(entry, dict) or "name" not in entry or not entry.get("emotions"):
            raise ValueError(f"{where}: class {index} needs 'name' and 'emotions'")
        classes.append(str(entry["name"]))
        for emotion in entry["emotions"]:
            key = normalise_emotion(emotion)
            if key is None or key in members:
                raise ValueError(f"{where}: emotion {emotion!r} is empty or listed twice")
            members[key] = index
    exclude = {
        str(dataset): frozenset(normalise_emotion(e) for e in emotions)
        for dataset, emotions in (spec.get("exclude") or {}).items()
    }
    return ClassScheme(
        name=name,
        description=str(spec.get("description", "")).strip(),
        classes=tuple(classes),
        members=MappingProxyType(members),
        datasets=frozenset(str(d) for d in spec.get("datasets", [])),
        exclude=MappingProxyType(exclude),
    )


def available_schemes() -> list[str]:
    """Names of all shipped class schemes."""
    return sorted(_all_schemes())


def get_scheme(scheme: str | ClassScheme) -> ClassScheme:
    """The scheme called ``scheme`` (a ClassScheme passes through); ValueError lists the names."""
    if isinstance(scheme, ClassScheme):
        return scheme
    schemes = _all_schemes()
    if scheme not in schemes:
        raise ValueError(f"unknown class scheme {scheme!r}; available: {', '.join(sorted(schemes))}")
    return schemes[scheme]


def apply_scheme(
    table: pd.DataFrame, scheme: str | ClassScheme, report: LoadReport, check_datasets: bool = True
) -> pd.DataFrame:
    """Labels under ``scheme``; samples whose emotion the scheme drops are removed and reported.

    Raises ValueError when ``check_datasets`` and the table holds a dataset the scheme is not meant
    for (users' own manifests may use any scheme).
    """
    chosen = get_scheme(scheme)
    datasets = table["dataset"].unique() if check_datasets else []
    foreign = sorted({d for d in datasets if not chosen.applies_to(d)})
    if foreign:
        raise ValueError(
            f"class scheme {chosen.name!r} is for {sorted(chosen.datasets)}, not for {foreign}"
        )
    labels = [chosen.label_of(row.emotion, row.dataset) for row in table.itertuples(index=False)]
    keep = [label is not None for label in labels]
    for row, kept in zip(table.itertuples(index=False), keep):
        if not kept:
            report.drop(
                sample_key(row.dataset, row.subject, row.clip, row.onset),
                f"emotion {row.emotion!r} not in scheme {chosen.name}",
            )
    result = table.loc[keep].copy()
    result["label"] = pd.array([label for label in labels if label is not None], dtype="Int64")
    report.note(f"class scheme {chosen.name}: {len(result)} of {len(table)} samples kept")
    return result.reset_index(drop=True)
