"""Files in and out: atomic writes (:func:`atomic_path`: a temporary file in the target's folder, renamed into
place, so a crash never leaves a half-written result), JSON, folders claimed by one run, and a check of integer
options."""
from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def check_positive_int(name: str, value: object) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer >= 1 (Python or NumPy; bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write to; on success it is renamed onto ``path`` in one step, on
    failure it is removed. A crash therefore never leaves a half-written ``path``::

        with atomic_path("results.csv") as temporary:
            table.to_csv(temporary)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text_atomically(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` through a temporary file."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8", newline="\n") as stream:
        stream.write(text)
    return Path(path)


def write_png_atomically(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write an RGB (H, W, 3) or grey (H, W) uint8 image as PNG through a temporary file."""
    import cv2

    array = np.ascontiguousarray(image[..., ::-1] if image.ndim == 3 else image)
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"could not encode {path} as PNG")
    return write_bytes_atomically(path, encoded.tobytes())


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
