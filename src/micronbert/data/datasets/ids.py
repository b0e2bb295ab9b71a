"""Subject and clip id normalisation, in one place (DATASETS.md §2 rule 6).

Canonical forms (before namespacing by dataset): CASME II ``sub01``; SAMM ``006``; SMIC ``s01``
with clips ``s01_ne_01`` (the MEGC / SMIC-E spelling; the plain release's folders say ``s1`` and
``s1_ne_01``); CAS(ME)^3 ``spNO.1`` with lower-case clip letters. Each function raises ValueError
naming the value when it cannot be read.
"""
from __future__ import annotations

import re

from micronbert.data.datasets.sheets import cell_text

_INT_TEXT = re.compile(r"\d+(?:\.0*)?")
SMIC_EMOTION_TOKENS: dict[str, str] = {"ne": "negative", "po": "positive", "sur": "surprise"}


def _required(value: object, what: str) -> str:
    text = cell_text(value)
    if text is None:
        raise ValueError(f"{what} is empty")
    return text


def _as_int(text: str) -> int | None:
    return int(float(text)) if _INT_TEXT.fullmatch(text) else None


def _subject_number(value: object, what: str, prefixed: str, expected: str) -> int:
    """The number of a subject cell written as a number or as ``prefixed`` (regex, number in group 1)."""
    text = _required(value, what)
    number = _as_int(text)
    if number is not None:
        return number
    match = re.fullmatch(prefixed, text, re.IGNORECASE)
    if match is None:
        raise ValueError(f"{what} {text!r} {expected}")
    return int(match.group(1))


def casme2_subject(value: object) -> str:
    """``1``, ``01``, ``sub1``, ``sub01`` -> ``sub01``."""
    number = _subject_number(value, "CASME II subject", r"sub(\d+)", "is neither a number nor 'subNN'")
    return f"sub{number:02d}"


def samm_subject(value: object) -> str:
    """``6``, ``06``, ``006`` -> ``006``."""
    text = _required(value, "SAMM subject")
    number = _as_int(text)
    if number is None:
        raise ValueError(f"SAMM subject {text!r} is not a number")
    return f"{number:03d}"


def smic_subject(value: object) -> str:
    """``1``, ``s1``, ``s01`` -> ``s01``."""
    number = _subject_number(value, "SMIC subject", r"s(\d+)", "is neither a number nor 'sN'")
    return f"s{number:02d}"


def smic_clip(value: object) -> str:
    """``s1_ne_01``, ``s01_ne_1`` -> ``s01_ne_01``; other names are returned unchanged."""
    text = _required(value, "SMIC clip")
    match = re.fullmatch(r"s(\d+)_([a-z]+)_(\d+)", text, re.IGNORECASE)
    if match is None:
        return text
    return f"s{int(match.group(1)):02d}_{match.group(2).lower()}_{int(match.group(3)):02d}"


def smic_clip_emotion(clip: str) -> str | None:
    """Emotion encoded in an SMIC clip name (``s01_ne_01`` -> ``negative``), None if absent."""
    match = re.fullmatch(r"s\d+_([a-z]+)_\d+", clip, re.IGNORECASE)
    return SMIC_EMOTION_TOKENS.get(match.group(1).lower()) if match else None


def casme3_subject(value: object) -> str:
    """``spNO.1``, ``spNo.1``, ``SPNO1``, ``1`` -> ``spNO.1``."""
    number = _subject_number(value, "CAS(ME)^3 subject", r"sp\s*no\.?\s*(\d+)", "is not of the form 'spNO.k'")
    return f"spNO.{number}"


def casme3_clip(value: object) -> str:
    """Stimulus letter in lower case (the v2 sheet writes ``J`` for spNO.14, folders say ``j``)."""
    return _required(value, "CAS(ME)^3 clip").lower()


def plain_id(value: object, what: str, pad: int = 0) -> str:
    """A generic id as text; integers (also ``6.0``) are zero-padded to ``pad`` digits."""
    text = _required(value, what)
    number = _as_int(text)
    return f"{number:0{pad}d}" if number is not None else text
