"""Text from data (class names, file names, synthesizer names) made safe for markdown reports."""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_\[\]{}<>|#$])")  # $: GitHub renders text between two as maths


def escape(text: object) -> str:
    """``text`` with markdown's and HTML's active characters backslash-escaped and line breaks flattened,
    so a folder named ``a|b_<c>`` reads as itself in a table cell and runs nothing in an HTML view."""
    flat = " ".join(str(text).split())
    return _SPECIAL.sub(r"\\\1", flat)
