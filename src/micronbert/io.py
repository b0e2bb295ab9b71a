"""Files in and out: atomic writes (a temporary file in the target's folder, renamed into place, so a crash
never leaves a half-written result), YAML configuration mappings, dataclasses built from them, and a check of
their integer fields."""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import tempfile
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np


def check_positive_int(name: str, value: object) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer >= 1 (Python or NumPy; bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def write_text_atomically(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` through a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def json_safe(value: Any) -> Any:
    """``value`` with NaN floats as ``None`` and numpy scalars/arrays as plain Python, recursively."""
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def write_json_atomically(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON (NaN as null) through a temporary file."""
    return write_text_atomically(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


def read_yaml_mapping(path: str | os.PathLike[str], section: str | None = None) -> dict[str, Any]:
    """The mapping in a YAML file (the part under a top-level ``section:`` key when there is one).

    A missing file raises ``FileNotFoundError``; invalid YAML or a non-mapping raises ``ValueError``
    naming the file.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such configuration file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    if section is not None and isinstance(data, dict) and isinstance(data.get(section), dict):
        data = data[section]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of {section or 'configuration'} options")
    return data


def read_json_mapping(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """The JSON object in the file ``path``; a file that is not one raises ``ValueError`` naming it as ``what``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable {what} ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a readable {what} (expected a JSON object)")
    return data


def dataclass_from_mapping(cls: type, data: dict[str, Any], what: str) -> Any:
    """``cls(**data)`` for a dataclass, with unknown keys raising ``ValueError`` that names them and ``what``."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{what}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**data)


def config_from_yaml(build: Callable[[dict[str, Any]], Any], path: str | os.PathLike[str], section: str) -> Any:
    """``build`` applied to the YAML mapping in ``path`` (under ``section:`` when present); a bad field
    raises ``ValueError`` prefixed with the file's path."""
    data = read_yaml_mapping(path, section)
    try:
        return build(data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from err


def claim_folder(record: str | os.PathLike[str], identity: dict[str, Any], what: str) -> None:
    """Make the folder of ``record`` belong to one run: write ``identity`` there as JSON the first time; later,
    raise ``ValueError`` naming the differing fields if the recorded identity is another one."""
    record = Path(record)
    if not record.is_file():
        write_json_atomically(record, identity)
        return
    try:
        previous = json.loads(record.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{record}: not valid JSON ({err}); delete the folder to start afresh") from None
    if previous != identity:
        changed = sorted(k for k in set(previous) | set(identity) if previous.get(k) != identity.get(k))
        raise ValueError(f"{record.parent} holds a different {what} (differs in {', '.join(changed)}); "
                         "choose another output folder or delete it")
