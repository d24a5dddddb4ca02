"""The linter configuration in pyproject.toml (``[tool.ruff]``) holds for the whole tree.

ruff checks line length, pyflakes' unused and undefined names, pycodestyle's errors and warnings, and
the order of imports (``[tool.ruff.lint]``) in synthaug/, plugins/, tests/, benchmarks/, examples/ and
docs/results/. ``ruff check --fix`` mends most of what it reports; a long line is wrapped by hand.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    try:
        import ruff  # noqa: F401  (the dev extra installs it)
    except ImportError:
        raise AssertionError("ruff is not installed: pip install -e '.[dev]'") from None
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"ruff check found problems:\n{result.stdout}{result.stderr}"
