"""One configuration system for every command: YAML files, ``--set key.path=value`` overrides, and
:class:`Config`, the base of every configuration dataclass.

A configuration is a dataclass deriving from :class:`Config`; its sections are fields whose type is another
such dataclass. ``from_dict`` builds it from nested mappings and refuses unknown keys and values of the wrong
type with a message naming the key (``optim.lr: expected a number, got '1e-3'``); ``from_yaml`` adds the file's
name to every message. YAML is read safely, with one change users expect: ``1e-3`` (no dot) is a number, as
it is in Python. Range checks stay in each class's ``__post_init__``.

For example, with ``Run`` a configuration whose section ``optim`` holds ``lr: float``::

    Run.from_options("run.yaml", ["optim.lr=3e-4", "train.epochs=5"])   # file, then overrides
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C", bound="Config")


class _Loader(yaml.SafeLoader):
    """Safe YAML that also reads ``1e-4`` (no dot) as a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[0-9][0-9_]*[eE][-+]?[0-9]+|\.(?:inf|Inf|INF)|[-+]\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """YAML text to Python values (safe; ``1e-3`` is a float)."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass


def read_yaml_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in a YAML file (an empty file is ``{}``); a missing file raises ``FileNotFoundError``, invalid
    YAML or a non-mapping ``ValueError``, both naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such configuration file")
    try:
        data = parse_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of options, got {type(data).__name__}")
    return data


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with every ``dotted.key=value`` applied (the value read as YAML: ``1e-4``, ``[a, b]``,
    ``null``, ``true``); intermediate sections are created as needed."""
    values = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r} must read key=value (e.g. optim.lr=1e-4)")
        try:
            values[key.strip()] = parse_yaml(text)
        except yaml.YAMLError as err:
            raise ValueError(f"--set {item!r}: the value is not valid YAML ({err})") from None
    return set_values(data, values)


def set_values(data: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with each ``dotted.key: value`` of ``values`` set, creating sections as needed."""
    result = json.loads(json.dumps(data))
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = result
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{key}: {part} is not a section")
        node[leaf] = value
    return result


class Config:
    """Base of the configuration dataclasses: typed construction from mappings, YAML and ``--set`` overrides."""

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any], where: str = "") -> C:
        """Build from a (nested) mapping; unknown keys and wrong types raise ``ValueError`` naming the key."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"{where or cls.__name__}: expected a mapping of options, got {data!r}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"{where + ': ' if where else ''}unknown option(s) {', '.join(map(str, unknown))}; "
                             f"known: {', '.join(fields)}")
        values = {name: _convert(value, hints[name], _key(where, name)) for name, value in data.items()}
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where + ': ' if where else ''}{err}") from None

    @classmethod
    def from_yaml(cls: type[C], path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> C:
        """Read a YAML file, apply ``--set`` style ``overrides``, build; errors name the file."""
        data = apply_overrides(read_yaml_file(path), overrides)
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    @classmethod
    def from_options(cls: type[C], path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = (),
                     values: Mapping[str, Any] | None = None, base: Mapping[str, Any] | None = None) -> C:
        """The configuration of a command: ``base`` (the defaults), then the YAML file if given, then the
        ``--set`` ``overrides``, then ``values`` (dotted keys, from the command's own options)."""
        data = json.loads(json.dumps(base or {}))
        if path is not None:
            data = merge(data, read_yaml_file(path))
        data = set_values(apply_overrides(data, overrides), values or {})
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}" if path is not None else str(err)) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists (JSON- and YAML-ready)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[call-overload]

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed, validated like a new configuration."""
        return type(self).from_dict({**self.to_dict(), **changes})


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` laid over it, section by section (nested mappings merge, other values replace)."""
    result = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _type_name(kind: Any) -> str:
    return {float: "a number", int: "an integer", bool: "true or false", str: "a string"}.get(
        kind, getattr(kind, "__name__", str(kind)))


def _convert(value: Any, kind: Any, key: str) -> Any:
    """``value`` checked against the annotation ``kind`` (and converted: int → float, list → tuple, mapping →
    section)."""
    if kind is Any:
        return value
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        options = [a for a in arguments if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(value, option, key)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[0] if len(errors) == 1 else f"{key}: {value!r} fits none of the allowed types")
    if isinstance(kind, type) and issubclass(kind, Config):
        return kind.from_dict(value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return tuple(_convert(item, arguments[0], f"{key}[{i}]") for i, item in enumerate(value))
        if len(value) != len(arguments):
            raise ValueError(f"{key}: expected {len(arguments)} values, got {list(value)!r}")
        return tuple(_convert(item, sub, f"{key}[{i}]") for i, (item, sub) in enumerate(zip(value, arguments)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        return [_convert(item, arguments[0], f"{key}[{i}]") for i, item in enumerate(value)] if arguments \
            else list(value)
    if origin in (dict, Mapping) or kind is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if kind in (int, bool, str):
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            raise ValueError(f"{key}: expected {_type_name(kind)}, got {value!r}")
        return value
    return value
