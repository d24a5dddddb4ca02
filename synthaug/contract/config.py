"""Plugin options: a Config dataclass built from user options, unknown and ill-typed keys refused.

Options arrive from the CLI (``--synth-option epochs=5``, JSON-typed), from experiment specs and from
Python. Each is checked against the annotation of its dataclass field before the dataclass is built,
so ``epochs='x'`` fails at once with a line naming the option, the plugin and the type expected,
never as a traceback hours into training. Ints are accepted where floats are expected; a sequence
field also takes a string, which the plugin's ``__post_init__`` parses (``"covid,viral"``).
"""

from __future__ import annotations

import collections.abc
import types
import typing
from dataclasses import asdict, fields, is_dataclass
from typing import Any

from synthaug.errors import SynthaugError


def make_config(config_cls: type | None, options: dict[str, Any] | None, owner: str) -> Any:
    """Build a plugin's config dataclass from user options, naming unknown or ill-typed keys."""
    options = dict(options or {})
    if config_cls is None:
        if options:
            raise SynthaugError(f"{owner} takes no options; got {', '.join(sorted(options))}")
        return None
    known = {f.name: f for f in fields(config_cls)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        close = ", ".join(sorted(known))
        raise SynthaugError(f"{owner}: unknown option {unknown[0]!r}; options are {close}")
    hints = _hints(config_cls)
    for key, value in options.items():
        hint = hints.get(key, Any)
        if not _matches(value, hint):
            raise SynthaugError(f"option {key!r} of {owner} must be {_describe(hint)}; got {value!r}")
    try:
        return config_cls(**options)
    except TypeError as exc:  # a Config whose __post_init__ trips over a value it did not expect
        raise SynthaugError(f"{owner}: options {options} rejected ({exc})") from exc


def config_dict(config: Any) -> dict[str, Any]:
    return asdict(config) if is_dataclass(config) else {}


def _hints(config_cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(config_cls)
    except Exception:  # an annotation that names something unimportable here: check nothing
        return {}


def _arms(hint: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(hint)
    return (hint,)


def _matches(value: Any, hint: Any) -> bool:
    for arm in _arms(hint):
        base = typing.get_origin(arm) or arm
        if arm is Any or base is typing.ClassVar:
            return True
        if arm is type(None):
            if value is None:
                return True
        elif base is bool:
            if isinstance(value, bool):
                return True
        elif base is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return True
        elif base is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return True
        elif base in (tuple, list, collections.abc.Sequence):
            if isinstance(value, (tuple, list, str)):
                return True
        elif isinstance(base, type):
            if isinstance(value, base):
                return True
        else:  # a Literal, a TypeVar, ...: not checked here
            return True
    return False


def _describe(hint: Any) -> str:
    names = []
    for arm in _arms(hint):
        base = typing.get_origin(arm) or arm
        if arm is type(None):
            names.append("null")
        elif base in (tuple, list):
            names.append("a list")
        elif base is dict:
            names.append("a mapping")
        elif isinstance(base, type):
            names.append({"int": "an int", "float": "a number", "bool": "true or false",
                          "str": "a string"}.get(base.__name__, base.__name__))
        else:
            names.append(str(arm))
    return " or ".join(names)
