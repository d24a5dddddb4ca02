"""The one parser of sizes users type: ``64``, ``64x64x32``, ``64,64,32``, ``[64, 64, 32]``."""

from __future__ import annotations

from typing import Any

from synthaug.errors import SynthaugError


def parse_size(value: Any, dims: int | tuple[int, ...], what: str, expected: str | None = None) -> tuple[int, ...]:
    """Whole positive numbers from ``value`` (an int, a sequence, or text split on ``x`` or ``,``).

    ``dims``: how many numbers are allowed (an int, or a tuple of allowed counts). A single int is
    returned as a 1-tuple; callers that expand it (``N`` -> ``N x N``) do so themselves. ``expected``:
    how the message names the accepted forms (default ``N or NxN`` ...).
    """
    allowed = (dims,) if isinstance(dims, int) else tuple(dims)
    expected = expected or " or ".join("x".join(["N"] * k) for k in allowed)
    if isinstance(value, str):
        parts = [p for p in value.lower().replace(",", "x").replace(" ", "").split("x") if p != ""]
    elif isinstance(value, (int,)) and not isinstance(value, bool):
        parts = [value]
    else:
        try:
            parts = list(value)
        except TypeError:
            parts = [value]
    try:
        numbers = tuple(int(p) for p in parts)
        if any(isinstance(p, float) and not float(p).is_integer() for p in parts):
            raise ValueError
    except (TypeError, ValueError):
        raise SynthaugError(f"{what} must be {expected} in whole numbers; got {value!r}") from None
    if len(numbers) not in allowed or min(numbers) < 1:
        raise SynthaugError(f"{what} must be {expected} in positive whole numbers; got {value!r}")
    return numbers
