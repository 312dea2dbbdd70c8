"""Base class for frozen, validated, serialisable configs (private).

Configs are frozen dataclasses (STYLE.md principle 6). Subclass :class:`Config`, declare fields
with defaults, and put range checks in ``validate``; they run once, at construction.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np

from cytoviz._io import load_json, save_json

__all__ = ["Config"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Frozen dataclass with validation, ``to_dict``/``from_dict`` and JSON save/load."""

    def __post_init__(self) -> None:
        # Tuples stay tuples after a JSON round trip (lists become tuples).
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        self.validate()

    def validate(self) -> None:
        """Check field values; raise ``ValueError`` naming the field. Override in subclasses."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python representation (nested configs become dicts)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, Config) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from :meth:`to_dict` output (e.g. a JSON file), checking every value's type.

        Parameters
        ----------
        data
            Field name -> value. Each value must match the field's annotation: ``int`` (not a
            ``bool``), ``float`` (an ``int`` is accepted), ``str``, ``bool``, ``None``, tuples
            (a JSON list of the element type, of the fixed length where there is one), nested
            configs (a dict), and unions of these.

        Returns
        -------
        Config
            The validated config.

        Raises
        ------
        ValueError
            For unknown fields, a value of the wrong type (naming the field, the value and the
            type expected), or a value that :meth:`validate` refuses.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__}: expected an object of field values, got "
                             f"{type(data).__name__}")
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown field(s) {unknown}; known fields are {sorted(names)}"
            )
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            hint = hints.get(key)
            if not _matches(value, hint):
                raise ValueError(
                    f"{cls.__name__}: field {key!r} must be {_describe(hint)}, got {value!r} "
                    f"({type(value).__name__})"
                )
            sub = _config_type(hint)
            kwargs[key] = sub.from_dict(value) if sub is not None and isinstance(value, dict) else value
        return cls(**kwargs)

    def replace(self, **changes: Any) -> Self:
        """Copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the config as JSON (atomically), tagged with its class name."""
        return save_json({"config_class": type(self).__name__, **self.to_dict()}, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read a config written by :meth:`save`.

        Parameters
        ----------
        path
            The JSON file.

        Returns
        -------
        Config
            The config.

        Raises
        ------
        ValueError
            For a file that is not JSON, holds another config class, or has a field of the
            wrong type or value; the message names the file.
        """
        data = load_json(path)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: holds a JSON {type(data).__name__}, not a {cls.__name__}")
        name = data.pop("config_class", cls.__name__)
        if name != cls.__name__:
            raise ValueError(f"{path}: holds a {name}, not a {cls.__name__}")
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from exc


def _is_union(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as read from JSON, or given in Python) fits the annotation ``hint``.

    Annotations this does not know (``Any``, ``Literal`` ...) accept every value; ``validate``
    checks those.
    """
    if hint is None or hint is Any:
        return True
    if _is_union(hint):
        return any(_matches(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool | np.bool_)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
    if hint is str:
        return isinstance(value, str)
    if typing.get_origin(hint) is tuple:
        if isinstance(value, np.ndarray) and value.ndim == 1:
            value = value.tolist()
        if not isinstance(value, list | tuple):
            return False
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if isinstance(hint, type) and issubclass(hint, Config):
        return isinstance(value, hint | dict)
    return True


def _describe(hint: Any) -> str:
    """``hint`` in words, for error messages: ``"an integer or null"``."""
    if _is_union(hint):
        return " or ".join(_describe(arm) for arm in typing.get_args(hint))
    words = {type(None): "null", bool: "true or false", int: "an integer", float: "a number",
             str: "a string"}
    if hint in words:
        return words[hint]
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of which each item is {_describe(args[0])}"
        return f"a list of {len(args)} items, each {' / '.join(_describe(a) for a in args)}"
    if isinstance(hint, type) and issubclass(hint, Config):
        return f"an object of {hint.__name__} fields"
    return str(hint)


def _config_type(hint: Any) -> type[Config] | None:
    if isinstance(hint, type) and issubclass(hint, Config):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for arg in typing.get_args(hint):
            if isinstance(arg, type) and issubclass(arg, Config):
                return arg
    return None
