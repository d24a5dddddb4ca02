"""The one exception type users see.

Every error caused by the user's input (a path, a value, a name) is a :class:`SynthaugError` whose
message is a single line naming the bad file or value and what was expected. The CLI prints it and
exits with code 2; Python callers catch it like any exception.
"""

from __future__ import annotations


class SynthaugError(Exception):
    """Bad input: a one-line message naming the file or value and what was expected."""

    exit_code = 2

    def __init__(self, message: str):
        # One line, always: the CLI prints exactly this.
        super().__init__(" ".join(str(message).split()))
