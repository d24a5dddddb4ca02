"""The linter configuration in pyproject.toml (``[tool.ruff]``) holds for the whole tree.

ruff checks line length, pyflakes' unused and undefined names, pycodestyle's errors and warnings, and
the order of imports (``[tool.ruff.lint]``) in synthaug/, plugins/, tests/, benchmarks/, examples/ and
docs/results/. ``ruff check --fix`` mends most of what it reports; a long line is wrapped by hand.
No function or method in synthaug/ or plugins/ is over 80 lines (one test per file names each offender).
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    try:
        import ruff  # noqa: F401  (the dev extra installs it)
    except ImportError:
        raise AssertionError("ruff is not installed: pip install -e '.[dev]'") from None
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"ruff check found problems:\n{result.stdout}{result.stderr}"


#: The longest a function or method may be, from its ``def`` line to the last line of its body
#: (decorators not counted): longer ones are split into named stages (issue #25).
MAX_FUNCTION_LINES = 80
LENGTH_CHECKED = sorted(p.relative_to(ROOT).as_posix() for folder in ("synthaug", "plugins")
                        for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def long_functions(source: str, path: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path:qualified.name:lines`` of every function or method in ``source`` over ``limit`` lines."""
    import ast

    found = []

    def visit(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = f"{prefix}{child.name}" if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                  ast.ClassDef)) else None
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = child.end_lineno - child.lineno + 1
                if lines > limit:
                    found.append(f"{path}:{name}:{lines}")
            visit(child, f"{name}." if name else prefix)

    visit(ast.parse(source, filename=path), "")
    return found


def test_long_functions_are_found_by_their_def_to_last_line():
    source = ("@decorator\ndef short():\n" + "    x = 1\n" * 79
              + "class C:\n    def long(self):\n" + "        y = 2\n" * 80)
    assert long_functions(source, "m.py") == ["m.py:C.long:81"]  # short: 80 lines, the decorator not counted


@pytest.mark.parametrize("path", LENGTH_CHECKED)
def test_no_function_is_longer_than_80_lines(path):
    offenders = long_functions((ROOT / path).read_text(encoding="utf-8"), path)
    assert not offenders, (f"functions over {MAX_FUNCTION_LINES} lines (file:function:lines); split them into "
                           "stages:\n" + "\n".join(offenders))
