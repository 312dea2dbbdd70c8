"""Base class for frozen, validated, serialisable configs (private).

Configs are frozen dataclasses (STYLE.md principle 6). Subclass :class:`Config`, declare fields
with defaults, and put range checks in ``validate``; they run once, at construction.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Self

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
        """Build from :meth:`to_dict` output; unknown keys raise a ``ValueError``."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown field(s) {unknown}; known fields are {sorted(names)}"
            )
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            sub = _config_type(hints.get(key))
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
        """Read a config written by :meth:`save`."""
        data = load_json(path)
        name = data.pop("config_class", cls.__name__)
        if name != cls.__name__:
            raise ValueError(f"{path}: holds a {name}, not a {cls.__name__}")
        return cls.from_dict(data)


def _config_type(hint: Any) -> type[Config] | None:
    if isinstance(hint, type) and issubclass(hint, Config):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for arg in typing.get_args(hint):
            if isinstance(arg, type) and issubclass(arg, Config):
                return arg
    return None
