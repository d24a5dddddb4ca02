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


def describe_options(config_cls: type | None) -> list[dict[str, Any]]:
    """A Config's options as ``{name, type, default, meaning}`` rows, the meaning taken from the code:
    the field's ``metadata["help"]``, else the ``# comment`` ending its line in the class (continued on
    the comment-only lines below it), else nothing. What ``synthaug plugins --options NAME`` prints."""
    from dataclasses import MISSING

    if config_cls is None:
        return []
    comments = _field_comments(config_cls)
    hints = _hints(config_cls)
    rows = []
    for f in fields(config_cls):
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = None
        hint = hints.get(f.name, f.type)
        rows.append({"name": f.name, "type": _describe(hint) if hint is not Any else "any", "default": default,
                     "meaning": str(f.metadata.get("help", "")) or comments.get(f.name, "")})
    return rows


def _field_comments(config_cls: type) -> dict[str, str]:
    """``field name -> trailing comment`` read from the source of ``config_cls`` and its bases."""
    import inspect
    import io
    import re
    import tokenize

    found: dict[str, str] = {}
    for cls in reversed(config_cls.__mro__[:-1]):  # a subclass's comment wins over its base's
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):  # defined in a notebook or a string: no source to read
            continue
        current, lines = None, source.splitlines()
        comment_at = {}
        try:
            for token in tokenize.generate_tokens(io.StringIO(source).readline):
                if token.type == tokenize.COMMENT:
                    comment_at[token.start[0]] = token.string.lstrip("#").strip()
        except (tokenize.TokenError, IndentationError):
            continue
        above: list[str] = []  # ``#: text`` lines just above a field (the Sphinx attribute-comment form)
        for number, line in enumerate(lines, start=1):
            field_match = re.match(r"\s+([A-Za-z_]\w*)\s*:", line)
            if field_match and not line.lstrip().startswith("#"):
                current = field_match.group(1)
                if number in comment_at:
                    found[current] = comment_at[number]
                elif above:
                    found[current], current = " ".join(above), None
                else:
                    current = None
                above = []
            elif line.lstrip().startswith("#:") and number in comment_at:
                above.append(comment_at[number].lstrip(":").strip())
                current = None
            elif current and line.lstrip().startswith("#") and number in comment_at:
                found[current] += " " + comment_at[number]  # the comment goes on below the field
            else:
                current, above = None, []
    return found
