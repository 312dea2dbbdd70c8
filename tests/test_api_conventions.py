"""The public API's conventions, checked in scanpy's manner (its tests/test_package_structure.py).

For every name in the ``__all__`` of cytoviz's public namespaces (:data:`NAMESPACES`):

``summary``
    It has a numpydoc docstring that opens with a summary line (modules named in ``cytoviz``'s
    ``__all__`` too).
``parameters``
    A function that takes parameters has a ``Parameters`` section; a class whose constructor
    takes parameters has a ``Parameters`` or an ``Attributes`` section.
``method-docstring``
    Every public method and property of a public class has a docstring (inherited ones count).
``positional``
    A public function takes at most three positional parameters (positional-only or
    positional-or-keyword, with a default or without: the rest go after ``*``).
``flag``
    Boolean flags (a ``bool`` annotation or default) are keyword-only.
``first``
    The first parameter is the data the function works on: if it can be passed by position,
    it is not a flag and not an option (a name in :data:`OPTION_NAMES`).

Everything is collected first and reported at once. Known violations that other changes will
fix wait in :data:`_PENDING`; :func:`test_pending_names_only_current_violations` fails as soon
as one of them is fixed, so the list cannot go stale.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

#: The public namespaces, most specific first (a name exported twice is reported where it is
#: first met: ``cytoviz.data.CellDataset``, not ``cytoviz.CellDataset``).
NAMESPACES = (
    "cytoviz.data",
    "cytoviz.diffusion",
    "cytoviz.heatmaps",
    "cytoviz.anomaly",
    "cytoviz.calibration",
    "cytoviz.psychometric",
    "cytoviz.evaluation",
    "cytoviz.pl",
    "cytoviz.widgets",
    "cytoviz.authenticity",
    "cytoviz.classes",
    "cytoviz.figures",
    "cytoviz",
)

#: Parameter names that mark an option, never the data a function works on.
OPTION_NAMES = frozenset({
    "config", "device", "seed", "rng", "progress", "verbose", "show", "title", "budget",
    "dtype", "batch_size", "template",
})

MAX_POSITIONAL = 3

#: Known violations, as (public name, rule), in files that other changes own; empty it as they
#: are fixed. Never add a new function here: fix the function.
_PENDING: frozenset[tuple[str, str]] = frozenset()

_SECTION = "^{}\n-{{3,}}$"


def _has_section(doc: str, *names: str) -> bool:
    return any(re.search(_SECTION.format(name), doc, re.MULTILINE) for name in names)


def _summary_problem(doc: str | None) -> str | None:
    if not doc or not doc.strip():
        return "no docstring"
    first = doc.strip().splitlines()[0].strip()
    if re.fullmatch(r"-+|Parameters|Returns|Examples|Notes|Attributes|Raises", first):
        return f"the docstring opens with {first!r}, not a summary line"
    return None


def _is_flag(p: inspect.Parameter) -> bool:
    if isinstance(p.default, bool):
        return True
    ann = p.annotation
    if ann is bool:
        return True
    return isinstance(ann, str) and "bool" in (part.strip() for part in ann.split("|"))


def _positional(sig: inspect.Signature) -> list[inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p for p in sig.parameters.values() if p.kind in kinds]


def check_function(func: Callable[..., Any]) -> dict[str, str]:
    """The rules ``func`` breaks, as {rule: what is wrong}."""
    out: dict[str, str] = {}
    doc = inspect.getdoc(func)
    if problem := _summary_problem(doc):
        out["summary"] = problem
    sig = inspect.signature(func)
    if sig.parameters and doc and not _has_section(doc, "Parameters"):
        out["parameters"] = "takes parameters but its docstring has no Parameters section"
    positional = _positional(sig)
    if len(positional) > MAX_POSITIONAL:
        names = ", ".join(p.name for p in positional)
        out["positional"] = (f"{len(positional)} positional parameters ({names}); at most "
                             f"{MAX_POSITIONAL}, put the rest after *")
    flags = [p.name for p in positional if _is_flag(p)]
    if flags:
        out["flag"] = f"boolean flag(s) {flags} can be passed by position; put them after *"
    if positional and (_is_flag(positional[0]) or positional[0].name in OPTION_NAMES):
        out["first"] = (f"the first parameter {positional[0].name!r} is an option, not the "
                        "data; make it keyword-only")
    return out


def _public_members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public methods and properties of ``cls`` and of its cytoviz base classes."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("cytoviz"):
            continue
        for name, attr in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            func = attr.fget if isinstance(attr, property) else getattr(attr, "__func__", attr)
            if inspect.isfunction(func):
                seen.add(name)
                yield name, getattr(cls, name)


def check_class(cls: type) -> dict[str, str]:
    """The rules ``cls`` breaks, as {rule: what is wrong}."""
    out: dict[str, str] = {}
    doc = inspect.getdoc(cls)
    if problem := _summary_problem(doc):
        out["summary"] = problem
    try:
        takes = bool(inspect.signature(cls).parameters)
    except ValueError:  # e.g. an exception class: no Python-level signature
        takes = False
    if takes and doc and not _has_section(doc, "Parameters", "Attributes"):
        out["parameters"] = ("the constructor takes parameters but the docstring has neither a "
                             "Parameters nor an Attributes section")
    bare = [name for name, member in _public_members(cls) if not inspect.getdoc(member)]
    if bare:
        out["method-docstring"] = f"no docstring on {bare}"
    return out


def _public_objects() -> Iterator[tuple[str, Any]]:
    """(public name, object) for each name in the namespaces' ``__all__``, each object once."""
    seen: set[int] = set()
    for module_name in NAMESPACES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{module_name}.{name}", obj


def collect_violations() -> dict[tuple[str, str], str]:
    """Every violation in the public API, as {(public name, rule): what is wrong}."""
    found: dict[tuple[str, str], str] = {}
    for qualname, obj in _public_objects():
        if inspect.ismodule(obj):
            problems = {}
            if problem := _summary_problem(obj.__doc__):
                problems["summary"] = problem
        elif inspect.isclass(obj):
            problems = check_class(obj)
        elif callable(obj):
            problems = check_function(inspect.unwrap(obj))
        else:  # constants: documented with a #: comment where they are defined
            continue
        for rule, detail in problems.items():
            found[qualname, rule] = detail
    return found


@pytest.fixture(scope="module")
def violations() -> dict[tuple[str, str], str]:
    return collect_violations()


def _report(keys: list[tuple[str, str]], found: dict[tuple[str, str], str]) -> str:
    return "\n".join(f"  {name} [{rule}]: {found.get((name, rule), '')}" for name, rule in keys)


def test_every_public_namespace_has_an_all() -> None:
    for module_name in NAMESPACES:
        module = importlib.import_module(module_name)
        assert isinstance(getattr(module, "__all__", None), list | tuple), module_name
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert not missing, f"{module_name}.__all__ names {missing}, which do not exist"


def test_public_api_follows_the_conventions(violations) -> None:
    new = sorted(set(violations) - _PENDING)
    assert not new, (
        f"{len(new)} public API convention violation(s) (rules: this module's docstring):\n"
        + _report(new, violations)
    )


def test_pending_names_only_current_violations(violations) -> None:
    fixed = sorted(_PENDING - set(violations))
    assert not fixed, (
        "these no longer violate the conventions (or are no longer public): remove them from "
        "_PENDING:\n" + _report(fixed, violations)
    )


# ------------------------------------------------------------------ the checker itself
def _good(data: Any, other: int, third: int = 0, *, flag: bool = False) -> None:
    """A conforming function.

    Parameters
    ----------
    data, other, third, flag
        Anything.
    """


def _four(a: Any, b: Any, c: Any, d: Any = None) -> None:
    """Four positionals.

    Parameters
    ----------
    a, b, c, d
        Anything.
    """


def _positional_flag(data: Any, normalise: bool = True) -> None:
    """A flag that can be passed by position.

    Parameters
    ----------
    data, normalise
        Anything.
    """


def _option_first(config: Any = None) -> None:
    """An option first.

    Parameters
    ----------
    config
        Anything.
    """


def _undocumented(data: Any) -> None:
    """Only a summary."""


class _Bare:
    """A class with an undocumented method."""

    __module__ = "cytoviz._checker_test"  # the checker looks at cytoviz classes only

    def method(self) -> None:
        pass

    @property
    def value(self) -> int:
        return 0


@pytest.mark.parametrize(("func", "rules"), [
    (_good, set()),
    (_four, {"positional"}),
    (_positional_flag, {"flag"}),
    (_option_first, {"first"}),
    (_undocumented, {"parameters"}),
    (lambda x: x, {"summary"}),
])
def test_the_checker_flags_each_rule(func, rules) -> None:
    assert set(check_function(func)) == rules


def test_the_checker_flags_undocumented_methods() -> None:
    problems = check_class(_Bare)
    assert set(problems) == {"method-docstring"}
    assert "method" in problems["method-docstring"] and "value" in problems["method-docstring"]
