"""The guard that keeps the layered core's arrows true (docs/architecture.md).

Every core module under ``synthaug/`` is read with ``ast`` (never imported, never executed) and all its
imports are collected: top level and inside functions, ``import a.b``, ``from a.b import c``
(``c`` counts as the module ``a.b.c`` when that module exists), relative imports resolved against the
module's package, and ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name.

Rank order (a module may import modules of equal or lower rank, never higher):

0. ``synthaug.errors``, ``synthaug.version``
1. ``synthaug.contract``: config -> types -> run -> hookspecs -> interfaces
2. ``synthaug.registry``
3. ``synthaug.kit`` (its modules may import each other, without a cycle)
4. ``synthaug.pipeline``: load -> split -> balance -> checkpoint -> store -> metrics -> report -> runs
   -> train -> evaluate -> project
5. ``synthaug.assess`` (the quality measures: read stores, train a feature network)
6. ``synthaug.api``
7. ``synthaug.experiments``
8. ``synthaug.cli``

``synthaug/__init__.py`` is the package facade: not ranked, and no core module imports it.
``plugins/`` (``synthaug_plugins``) is not core, and no core module imports it.

The plugin boundary: every module under ``plugins/`` (bundled plugins, as ``synthaug_plugins.*``) and
``examples/`` (third-party plugin packages, as installed, and user scripts, as ``examples.*``) is read
with the same collector. Of synthaug, a plugin imports only the facade ``synthaug``, ``synthaug.contract``
and ``synthaug.kit`` (never ``pipeline``, ``registry``, ``api``, ``assess``, ``experiments``, ``cli``,
nor ``errors``: the facade has ``SynthaugError``); a bundled plugin imports no other bundled plugin;
a user script imports the facade only. Its own package, the standard library and third-party
packages are free.

The checking functions take ``{module name: source text}`` so that the tests at the top of this file
can show each of them failing on a small synthetic tree; the tests below them run on the real tree.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Iterator, Mapping

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "synthaug"

#: The package facade: lazy re-exports for users and plugins. Not ranked.
FACADE = frozenset({"synthaug"})

#: room -> rank
ROOMS: dict[str, int] = {
    "synthaug.errors": 0,
    "synthaug.version": 0,
    "synthaug.contract": 1,
    "synthaug.registry": 2,
    "synthaug.kit": 3,
    "synthaug.pipeline": 4,
    "synthaug.assess": 5,
    "synthaug.api": 6,
    "synthaug.experiments": 7,
    "synthaug.cli": 8,
    "synthaug.__main__": 9,  # `python -m synthaug`: runs the CLI
}

#: rooms whose modules are ordered too: a module may import only modules earlier in the tuple (or
#: itself). The room's ``__init__`` ranks below all of them: it may import none of its own modules
#: (importing any of them runs it first, so it would drag later modules in ahead of earlier ones).
ORDER_INSIDE: dict[str, tuple[str, ...]] = {
    "synthaug.contract": ("config", "types", "run", "hookspecs", "interfaces"),
    "synthaug.pipeline": ("load", "split", "balance", "pool", "checkpoint", "store", "export", "metrics", "report",
                          "runs", "train", "evaluate", "project"),
}

#: Core modules in which bundled plugin names are not checked (user-facing choices live there).
NAME_CHECK_EXCLUDED_ROOMS = ("synthaug.cli", "synthaug.experiments")

#: (file, name) pairs exempt from the bundled-plugin-name check, each for a stated reason.
PLUGIN_NAME_EXEMPTIONS = frozenset({
    # Geometry.beam is "cone" or "parallel": the contract's own ray-geometry value, not the
    # `parallel` projector of the siddon_drr plugin that happens to share the word.
    ("synthaug/contract/types.py", "parallel"),
    # The feature network `synthaug quality` trains when none is named: a default like the CLI's,
    # kept beside the code that trains it so that the Python call and the command agree.
    ("synthaug/assess/features.py", "densenet121"),
    # Defaults of two Python calls, the same as their commands' (`--synth`, `--projector`): resample's
    # synthesizer (imbalanced-learn's fit_resample takes none) and project's projector.
    ("synthaug/api.py", "augment"),
    ("synthaug/pipeline/project.py", "siddon"),
})

#: Third-party packages the plugin contract may import (besides the standard library).
CONTRACT_THIRD_PARTY = frozenset({"numpy", "pluggy"})


# ---- reading the tree ------------------------------------------------------------------------------
def read_core(root: Path = ROOT) -> dict[str, str]:
    """``{module name: source}`` for every ``.py`` file under ``synthaug/`` (facade included)."""
    sources = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        sources[".".join(parts)] = path.read_text(encoding="utf-8")
    return sources


def core_modules(sources: Mapping[str, str]) -> list[str]:
    return sorted(m for m in sources if m not in FACADE)


def is_package(module: str, sources: Mapping[str, str]) -> bool:
    return module == PACKAGE or any(other.startswith(module + ".") for other in sources)


def module_file(module: str, sources: Mapping[str, str]) -> str:
    path = module.replace(".", "/")
    return f"{path}/__init__.py" if is_package(module, sources) else f"{path}.py"


def _walk_no_fstrings(node: ast.AST) -> Iterator[ast.AST]:
    """``ast.walk`` that does not enter f-strings (error messages may name anything)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if not isinstance(current, ast.JoinedStr):
            stack.extend(ast.iter_child_nodes(current))


def imports_of(module: str, source: str, sources: Mapping[str, str]) -> list[tuple[str, int]]:
    """Every module ``module`` imports, anywhere in its source, as ``(imported module, line)``."""
    found: list[tuple[str, int]] = []
    package = module if is_package(module, sources) else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, filename=module_file(module, sources))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level - 1 > len(base_parts) - 1:
                    found.append((f"<relative import beyond {PACKAGE}>", node.lineno))
                    continue
                base = ".".join(base_parts[:len(base_parts) - (node.level - 1)])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((candidate if alias.name != "*" and candidate in sources else base, node.lineno))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__"):
                found.append((node.args[0].value, node.lineno))
    return list(dict.fromkeys(found))  # `from synthaug import a, b` is one import of synthaug


def is_core_name(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


# ---- rank -------------------------------------------------------------------------------------------
def rank(module: str) -> tuple[int, int] | None:
    """(room rank, position inside an ordered room), or None for a module in no room."""
    room = next((r for r in sorted(ROOMS, key=len, reverse=True) if module == r or module.startswith(r + ".")), None)
    if room is None:
        return None
    if room not in ORDER_INSIDE:
        return ROOMS[room], 0
    if module == room:
        return ROOMS[room], -1
    name = module[len(room) + 1:].split(".")[0]
    if name not in ORDER_INSIDE[room]:
        return None
    return ROOMS[room], ORDER_INSIDE[room].index(name)


def downstream_imports(sources: Mapping[str, str]) -> list[str]:
    """Every ``importer -> imported`` pair that breaks the rank order, with the reason and line."""
    offences = []
    for module in core_modules(sources):
        own = rank(module)
        if own is None:
            offences.append(f"{module}: in no room of the rank order (place it in ROOMS / ORDER_INSIDE)")
            continue
        for imported, line in imports_of(module, sources[module], sources):
            if not is_core_name(imported):
                continue
            where = f"{module_file(module, sources)}:{line}"
            if imported in FACADE:
                offences.append(f"{module} -> {imported} ({where}: the package facade; import the module that "
                                f"defines the name)")
                continue
            theirs = rank(imported)
            if theirs is None:
                offences.append(f"{module} -> {imported} ({where}: not a ranked core module)")
            elif theirs > own:
                offences.append(f"{module} -> {imported} ({where}: rank {own} imports rank {theirs})")
    return offences


def plugin_imports(sources: Mapping[str, str]) -> list[str]:
    """Core modules importing the bundled plugins' package (plugins depend on the core, not back)."""
    return [f"{module} -> {imported} ({module_file(module, sources)}:{line})"
            for module in core_modules(sources)
            for imported, line in imports_of(module, sources[module], sources)
            if imported == "synthaug_plugins" or imported.startswith("synthaug_plugins.")]


# ---- cycles -----------------------------------------------------------------------------------------
def import_graph(sources: Mapping[str, str]) -> dict[str, set[str]]:
    """Core module -> the core modules it imports (the facade left out)."""
    modules = set(core_modules(sources))
    return {m: {i for i, _ in imports_of(m, sources[m], sources) if i in modules and i != m} for m in sorted(modules)}


def import_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path ``a, b, ..., a``) per strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def connect(v: str) -> None:  # Tarjan; the graphs here are a few dozen nodes deep at most
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)

    cycles = []
    for component in components:
        members, start = set(component), component[0]
        # shortest path back to start inside the component (breadth first)
        parents: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in parents:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & members):
                    if w not in parents:
                        parents[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        v = parents[start]
        while v != start:
            path.append(v)
            v = parents[v]
        path.append(start)
        cycles.append(path[::-1])
    return cycles


# ---- bundled plugin names ---------------------------------------------------------------------------
def bundled_plugin_names() -> set[str]:
    """Names registered by the entry points pyproject.toml declares in group ``synthaug``."""
    from synthaug.registry import build_registry

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    bundled = set(pyproject["project"]["entry-points"]["synthaug"])
    registry = build_registry()
    assert not set(registry.failed) & bundled, registry.failed
    return {row["name"] for row in registry.listing() if row["plugin"] in bundled}


def plugin_name_uses(sources: Mapping[str, str], names: set[str],
                     exemptions: frozenset[tuple[str, str]] = PLUGIN_NAME_EXEMPTIONS) -> list[str]:
    """Bundled plugin names hard-wired in core modules outside cli/ and experiments/.

    Reported: a string constant equal to a name as a function/lambda argument default, in a class-body
    or module-level assignment's value (inside tuples, lists, dicts, calls too), as a dict literal key
    or value anywhere, or as one side of ``==``, ``!=``, ``in``, ``not in`` (or a ``case``). Docstrings
    and f-strings (error messages) are not looked at.
    """
    found: set[tuple[str, int, str, str]] = set()
    for module in core_modules(sources):
        if any(module == room or module.startswith(room + ".") for room in NAME_CHECK_EXCLUDED_ROOMS):
            continue
        path = module_file(module, sources)
        exempt = {name for file, name in exemptions if file == path}

        def hit(node: ast.AST, context: str) -> None:
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names \
                    and node.value not in exempt:
                found.add((path, node.lineno, node.value, context))

        def hit_all(expr: ast.AST | None, context: str) -> None:
            if expr is not None:
                for sub in _walk_no_fstrings(expr):
                    hit(sub, context)

        def assignments(body: list[ast.stmt], context: str) -> None:
            """Assignments of a module or class body, also inside its if/try/with/for blocks."""
            for stmt in body:
                if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                    hit_all(stmt.value, context)
                elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    continue
                else:
                    for field in ("body", "orelse", "finalbody", "handlers"):
                        block = getattr(stmt, field, None)
                        if isinstance(block, list):
                            assignments([s for s in block if isinstance(s, ast.stmt)] +
                                        [s for h in block if isinstance(h, ast.ExceptHandler) for s in h.body],
                                        context)

        tree = ast.parse(sources[module], filename=path)
        assignments(tree.body, "module-level assignment")
        for node in _walk_no_fstrings(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                for default in [*node.args.defaults, *node.args.kw_defaults]:
                    hit_all(default, "argument default")
            elif isinstance(node, ast.ClassDef):
                assignments(node.body, f"class-body assignment in {node.name}")
            elif isinstance(node, ast.Dict):
                for key in node.keys:
                    if key is not None:
                        hit(key, "dict key")
                for value in node.values:
                    hit(value, "dict value")
            elif isinstance(node, ast.Compare) and any(
                    isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
                for side in [node.left, *node.comparators]:
                    hit(side, "comparison")
                    if isinstance(side, (ast.Tuple, ast.List, ast.Set)):
                        for element in side.elts:
                            hit(element, "comparison")
            elif isinstance(node, ast.MatchValue):
                hit(node.value, "match case")
    return [f"{path}:{line}: {name!r} as {context}" for path, line, name, context in sorted(found)]


# ---- the plugin contract stays light ----------------------------------------------------------------
def contract_imports(sources: Mapping[str, str]) -> list[str]:
    """Imports in ``synthaug.contract`` of anything but the standard library, numpy, pluggy,
    ``synthaug.errors`` and ``synthaug.contract.*``."""
    offences = []
    for module in core_modules(sources):
        if not (module == "synthaug.contract" or module.startswith("synthaug.contract.")):
            continue
        for imported, line in imports_of(module, sources[module], sources):
            top = imported.split(".")[0]
            allowed = (imported == "synthaug.errors" or imported == "synthaug.contract"
                       or imported.startswith("synthaug.contract.") or top == "__future__"
                       or (top != PACKAGE and top in sys.stdlib_module_names) or top in CONTRACT_THIRD_PARTY)
            if not allowed:
                offences.append(f"{module} -> {imported} ({module_file(module, sources)}:{line})")
    return offences


# ---- the plugin boundary ---------------------------------------------------------------------------
#: The bundled plugins' package (``plugins/``, installed under this name): each sub-package is one plugin.
BUNDLED = "synthaug_plugins"
#: The name the scripts directly in ``examples/`` are read under: user code, the facade only.
EXAMPLE_SCRIPTS = "examples"
#: What of synthaug a plugin may import besides the facade ``synthaug`` itself (each with its modules).
PLUGIN_MAY_IMPORT = ("synthaug.contract", "synthaug.kit")


def _outside_paths(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file for every ``.py`` under ``plugins/`` and ``examples/``: ``plugins/a/b.py`` is
    ``synthaug_plugins.a.b``; ``examples/x.py`` (a user's script) is ``examples.x``; a module of an
    example plugin package, ``examples/<project>/pkg/m.py``, is ``pkg.m`` (its name once installed)."""
    paths: dict[str, Path] = {}
    for folder, prefix in (("plugins", [BUNDLED]), ("examples", None)):
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if prefix is not None:
                parts = prefix + parts
            else:
                parts = [EXAMPLE_SCRIPTS, *parts] if len(parts) == 1 else parts[1:]
            if parts[-1] == "__init__":
                parts.pop()
            paths[".".join(parts)] = path
    return paths


def read_outside(root: Path = ROOT) -> dict[str, str]:
    """``{module name: source}`` for every module under ``plugins/`` and ``examples/``."""
    return {module: path.read_text(encoding="utf-8") for module, path in _outside_paths(root).items()}


def outside_files(root: Path = ROOT) -> dict[str, str]:
    """Module name -> its file relative to the repository, for the messages."""
    return {module: path.relative_to(root).as_posix() for module, path in _outside_paths(root).items()}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def boundary_imports(sources: Mapping[str, str], files: Mapping[str, str] | None = None) -> list[str]:
    """Every import across the plugin boundary, as ``file:line: module -> import (why)``.

    The modules of ``sources`` outside the core are checked: bundled plugins (``synthaug_plugins.X.*``,
    whose own package is ``synthaug_plugins.X``), user scripts (``examples.*``, no package of their own)
    and third-party plugin packages (their own package is their top-level name). Core modules in
    ``sources`` are not checked; they let ``from synthaug import pipeline`` resolve to the module it is.
    """
    offences = []
    for module in sorted(m for m in sources if not is_core_name(m)):
        parts = module.split(".")
        script = parts[0] == EXAMPLE_SCRIPTS
        own = ".".join(parts[:2]) if parts[0] == BUNDLED else None if script else parts[0]
        where = (files or {}).get(module) or module_file(module, sources)
        for imported, line in sorted(imports_of(module, sources[module], sources), key=lambda found: found[1]):
            if own is not None and _within(imported, own):
                continue
            if imported.startswith("<"):
                why = "a relative import beyond its package"
            elif is_core_name(imported):
                if imported == PACKAGE or (not script and any(_within(imported, p) for p in PLUGIN_MAY_IMPORT)):
                    continue
                why = ("a script in examples/ is user code: it imports the synthaug facade only" if script else
                       "a plugin imports only synthaug (the facade), synthaug.contract and synthaug.kit: "
                       "what it needs from the core belongs in synthaug.kit or the facade")
            elif _within(imported, BUNDLED):
                why = ("another bundled plugin: share through synthaug.kit, or use it by its registered name"
                       if parts[0] == BUNDLED else "a bundled plugin's module: use it by its registered name")
            else:
                continue  # the standard library, third-party packages
            offences.append(f"{where}:{line}: {module} -> {imported} ({why})")
    return offences


def torch_loaded_after(modules: list[str]) -> subprocess.CompletedProcess:
    code = f"import {', '.join(modules)}; import sys; assert 'torch' not in sys.modules, 'torch was imported'"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


LIGHT_MODULES = ["synthaug", "synthaug.contract.interfaces", "synthaug.contract.types", "synthaug.registry"]


# ==== the checks can fail: synthetic trees ===========================================================
def _tree(**modules: str) -> dict[str, str]:
    """A synthetic tree; keys use '__' for '.', e.g. synthaug__pipeline__split."""
    return {name.replace("__", "."): source for name, source in modules.items()}


def test_guard_reports_an_upward_import_anywhere_in_a_module():
    tree = _tree(
        synthaug="", synthaug__errors="", synthaug__pipeline="", synthaug__kit="",
        synthaug__kit__files="",
        synthaug__pipeline__train="from synthaug.errors import SynthaugError\n",
        synthaug__pipeline__split="def f():\n    from synthaug.pipeline import train\n",
        synthaug__pipeline__load="import synthaug.pipeline.split as s\nfrom . import balance\n",
        synthaug__pipeline__balance="from .split import x\nfrom ..kit import files\n",
        synthaug__kit__sizes="import importlib\nimportlib.import_module('synthaug.pipeline.load')\n",
        synthaug__registry="from synthaug import balance\n",
        synthaug__extra="",
    )
    offences = downstream_imports(tree)
    assert any(o.startswith("synthaug.pipeline.split -> synthaug.pipeline.train (synthaug/pipeline/split.py:2")
               for o in offences)
    assert any(o.startswith("synthaug.pipeline.load -> synthaug.pipeline.split ") for o in offences)
    assert any(o.startswith("synthaug.pipeline.load -> synthaug.pipeline.balance ") for o in offences)  # relative
    assert any(o.startswith("synthaug.kit.sizes -> synthaug.pipeline.load ") for o in offences)  # import_module
    assert any(o.startswith("synthaug.registry -> synthaug (") and "facade" in o for o in offences)
    assert any(o.startswith("synthaug.extra: in no room") for o in offences)
    # downward and same-rank imports, relative ones included, are fine
    assert not any(o.startswith(("synthaug.pipeline.balance", "synthaug.pipeline.train")) for o in offences)
    assert len(offences) == 6, offences
    with pytest.raises(AssertionError, match=r"synthaug.pipeline.split -> synthaug.pipeline.train"):
        assert_no_downstream(tree)


def test_guard_reports_the_room_init_importing_its_own_later_modules():
    tree = _tree(synthaug="", synthaug__pipeline="from synthaug.pipeline.train import train\n",
                 synthaug__pipeline__train="")
    assert downstream_imports(tree) == [
        "synthaug.pipeline -> synthaug.pipeline.train (synthaug/pipeline/__init__.py:1: rank (4, -1) imports "
        "rank (4, 10))"]


def test_guard_reports_a_cycle():
    tree = _tree(synthaug="", synthaug__kit="", synthaug__kit__a="from synthaug.kit import b\n",
                 synthaug__kit__b="def f():\n    import synthaug.kit.a\n",
                 synthaug__kit__c="from synthaug.kit import a\n")
    assert import_cycles(import_graph(tree)) == [["synthaug.kit.a", "synthaug.kit.b", "synthaug.kit.a"]]
    with pytest.raises(AssertionError, match=r"synthaug.kit.a -> synthaug.kit.b -> synthaug.kit.a"):
        assert_no_cycle(tree)
    longer = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(longer) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_guard_reports_a_hard_wired_plugin_name():
    tree = _tree(
        synthaug="", synthaug__pipeline="", synthaug__cli="", synthaug__contract="",
        synthaug__pipeline__balance='''
"""Docstring naming pix2pix is fine."""
from dataclasses import dataclass, field
DEFAULTS = ("augment", ["duplicate"])
def f(synth="pix2pix", *, other="fine"):
    g = lambda name="drr": name
    if synth == "xpgan" or synth in ("siddon", "nope"):
        raise ValueError(f"unknown {synth}; try pix2pix")
    return {"kaggle": 1, "k": "nifti"}
@dataclass
class Config:
    projector: str = "siddon"
    opts: dict = field(default_factory=lambda: {"x": 1})
''',
        synthaug__cli__balance='def f(synth="pix2pix"):\n    return synth == "augment"\n',
        synthaug__contract__types='beam = "parallel"\nwhich = "drr"\n',
    )
    names = {"pix2pix", "augment", "duplicate", "drr", "xpgan", "siddon", "kaggle", "nifti", "parallel"}
    found = plugin_name_uses(tree, names)
    assert found == [
        "synthaug/contract/types.py:2: 'drr' as module-level assignment",
        "synthaug/pipeline/balance.py:4: 'augment' as module-level assignment",
        "synthaug/pipeline/balance.py:4: 'duplicate' as module-level assignment",
        "synthaug/pipeline/balance.py:5: 'pix2pix' as argument default",
        "synthaug/pipeline/balance.py:6: 'drr' as argument default",
        "synthaug/pipeline/balance.py:7: 'siddon' as comparison",
        "synthaug/pipeline/balance.py:7: 'xpgan' as comparison",
        "synthaug/pipeline/balance.py:9: 'kaggle' as dict key",
        "synthaug/pipeline/balance.py:9: 'nifti' as dict value",
        "synthaug/pipeline/balance.py:12: 'siddon' as class-body assignment in Config",
    ], found
    # the exemption is exactly (file, name): 'parallel' elsewhere is reported
    assert plugin_name_uses(_tree(synthaug="", synthaug__kit="", synthaug__kit__x='B = "parallel"\n'), names) == [
        "synthaug/kit/x.py:1: 'parallel' as module-level assignment"]
    with pytest.raises(AssertionError, match=r"'pix2pix' as argument default"):
        assert_no_plugin_names(tree, names)


def test_guard_reports_heavy_or_upward_imports_in_the_contract_and_core_imports_of_plugins():
    tree = _tree(synthaug="", synthaug__contract="", synthaug__errors="",
                 synthaug__contract__types="import numpy as np\nimport math\nfrom synthaug.errors import E\n"
                                           "def f():\n    import torch\n",
                 synthaug__contract__interfaces="from .types import Volume\nfrom synthaug.kit import files\n",
                 synthaug__kit="", synthaug__kit__files="",
                 synthaug__pipeline="",
                 synthaug__pipeline__project="def f():\n    from synthaug_plugins.sources.nifti import r\n")
    assert contract_imports(tree) == [
        "synthaug.contract.interfaces -> synthaug.kit.files (synthaug/contract/interfaces.py:2)",
        "synthaug.contract.types -> torch (synthaug/contract/types.py:5)"]
    assert plugin_imports(tree) == [
        "synthaug.pipeline.project -> synthaug_plugins.sources.nifti (synthaug/pipeline/project.py:2)"]


def test_guard_reports_plugins_and_examples_crossing_the_boundary():
    tree = _tree(
        synthaug="", synthaug__errors="", synthaug__registry="", synthaug__pipeline="", synthaug__pipeline__runs="",
        synthaug__contract="", synthaug__contract__types="", synthaug__kit="", synthaug__kit__runs="",
        synthaug_plugins="", synthaug_plugins__gan="", synthaug_plugins__gan__networks="import torch\n",
        synthaug_plugins__gan__synthesizer=(
            "import json\nimport numpy as np\nimport synthaug\nfrom synthaug import ImageSet, pipeline\n"
            "from synthaug.contract.types import REAL\nfrom synthaug.kit import runs\nfrom . import networks\n"
            "from synthaug_plugins.gan.networks import G\nfrom synthaug.errors import SynthaugError\n"
            "def fit():\n    from synthaug.pipeline.runs import save_checkpoint\n"
            "    import importlib\n    importlib.import_module('synthaug.registry')\n"),
        synthaug_plugins__ct="", synthaug_plugins__sources="", synthaug_plugins__sources__example_ct="",
        synthaug_plugins__ct__anatomy=("def f():\n    from synthaug_plugins.sources.example_ct import load\n"
                                       "from .. import sources\nfrom ... import x\n"),
        mri="", mri__synthesizer="",
        mri__source=("from synthaug import DatasetSource\nfrom mri import synthesizer\nfrom .synthesizer import M\n"
                     "import synthaug.pipeline.store\nfrom synthaug_plugins.sources import example_ct\n"),
        examples__pipeline=("import numpy\nimport synthaug\nfrom synthaug import balance\n"
                            "from synthaug.kit import files\n"),
    )
    files = {"synthaug_plugins.gan.synthesizer": "plugins/gan/synthesizer.py"}
    found = boundary_imports(tree, files)
    plugin_rule = ("a plugin imports only synthaug (the facade), synthaug.contract and synthaug.kit: what it needs "
                   "from the core belongs in synthaug.kit or the facade")
    assert found == [
        "examples/pipeline.py:4: examples.pipeline -> synthaug.kit (a script in examples/ is user code: it "
        "imports the synthaug facade only)",
        "mri/source.py:4: mri.source -> synthaug.pipeline.store (" + plugin_rule + ")",
        "mri/source.py:5: mri.source -> synthaug_plugins.sources.example_ct (a bundled plugin's module: use it "
        "by its registered name)",
        "synthaug_plugins/ct/anatomy.py:2: synthaug_plugins.ct.anatomy -> synthaug_plugins.sources.example_ct "
        "(another bundled plugin: share through synthaug.kit, or use it by its registered name)",
        "synthaug_plugins/ct/anatomy.py:3: synthaug_plugins.ct.anatomy -> synthaug_plugins.sources "
        "(another bundled plugin: share through synthaug.kit, or use it by its registered name)",
        "synthaug_plugins/ct/anatomy.py:4: synthaug_plugins.ct.anatomy -> <relative import beyond synthaug> "
        "(a relative import beyond its package)",
        "plugins/gan/synthesizer.py:4: synthaug_plugins.gan.synthesizer -> synthaug.pipeline (" + plugin_rule + ")",
        "plugins/gan/synthesizer.py:9: synthaug_plugins.gan.synthesizer -> synthaug.errors (" + plugin_rule + ")",
        "plugins/gan/synthesizer.py:11: synthaug_plugins.gan.synthesizer -> synthaug.pipeline.runs ("
        + plugin_rule + ")",
        "plugins/gan/synthesizer.py:13: synthaug_plugins.gan.synthesizer -> synthaug.registry (" + plugin_rule + ")",
    ], found
    # not reported: the facade (its names, and `import synthaug`), the contract, the kit, a plugin's own
    # package (relative or absolute), the standard library and third-party packages (numpy, torch)
    with pytest.raises(AssertionError, match=r"synthaug_plugins.ct.anatomy -> synthaug_plugins.sources.example_ct"):
        assert_plugin_boundary(tree)


def test_torch_check_fails_when_torch_is_imported():
    pytest.importorskip("torch")
    result = torch_loaded_after(["synthaug", "synthaug_plugins.xpgan_projector.training"])
    assert result.returncode != 0 and "torch was imported" in result.stderr


# ==== the real tree ==================================================================================
def assert_no_downstream(sources: Mapping[str, str]) -> None:
    offences = downstream_imports(sources)
    assert not offences, "imports against the rank order:\n" + "\n".join(offences)


def assert_no_cycle(sources: Mapping[str, str]) -> None:
    cycles = import_cycles(import_graph(sources))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def assert_plugin_boundary(sources: Mapping[str, str], files: Mapping[str, str] | None = None) -> None:
    offences = boundary_imports(sources, files)
    assert not offences, "imports across the plugin boundary (docs/architecture.md):\n" + "\n".join(offences)


def assert_no_plugin_names(sources: Mapping[str, str], names: set[str]) -> None:
    found = plugin_name_uses(sources, names)
    assert not found, "bundled plugin names hard-wired in the core:\n" + "\n".join(found)


@pytest.fixture(scope="module")
def real_tree() -> dict[str, str]:
    return read_core()


def test_import_collection_sees_the_real_tree(real_tree):
    """The checks below look at something: function-level and ``from package import module`` imports
    are collected, and every room is present."""
    imported = {i for i, _ in imports_of("synthaug.pipeline.train", real_tree["synthaug.pipeline.train"], real_tree)}
    assert {"synthaug.kit.progress", "synthaug.registry", "synthaug.pipeline.runs", "torch"} <= imported
    assert "synthaug.pipeline.balance" in {
        i for i, _ in imports_of("synthaug.api", real_tree["synthaug.api"], real_tree)}
    assert {r for r in ROOMS} <= set(real_tree)
    assert sum(len(v) for v in import_graph(real_tree).values()) > 50


def test_no_module_imports_downstream(real_tree):
    assert_no_downstream(real_tree)


def test_no_import_cycle(real_tree):
    assert_no_cycle(real_tree)


def test_core_imports_no_bundled_plugin_module(real_tree):
    found = plugin_imports(real_tree)
    assert not found, "core modules importing synthaug_plugins (plugins/):\n" + "\n".join(found)


def test_core_names_no_bundled_plugin(real_tree):
    names = bundled_plugin_names()
    assert {"pix2pix", "augment", "duplicate", "siddon", "resnet50", "ctsim"} <= names, names
    assert all(name in real_tree["synthaug.contract.types"] for file, name in PLUGIN_NAME_EXEMPTIONS
               if file == "synthaug/contract/types.py")  # the exemption still has something to exempt
    assert_no_plugin_names(real_tree, names)


def test_contract_imports_no_torch(real_tree):
    offences = contract_imports(real_tree)
    assert not offences, "the plugin contract imports more than stdlib, numpy, pluggy, synthaug.errors:\n" + \
        "\n".join(offences)
    result = torch_loaded_after(LIGHT_MODULES)
    assert result.returncode == 0, result.stderr


def test_boundary_collection_sees_plugins_and_examples():
    """The boundary check looks at something: every bundled plugin, both example packages and the
    example scripts are read, and imports inside functions are collected there too."""
    outside = read_outside()
    tree = {**read_core(), **outside}
    assert {"synthaug_plugins.acgan.synthesizer", "synthaug_plugins.ctsim.anatomy", "synthaug_plugins.sources.h5",
            "synthaug_mri.source", "synthaug_noise.synthesizer", "examples.pipeline",
            "examples.torch_loop"} <= set(outside)
    assert outside_files()["synthaug_mri.source"] == "examples/synthaug-mri/synthaug_mri/source.py"
    xpgan = "synthaug_plugins.xpgan_projector.synthesizer"
    imported = {i for i, _ in imports_of(xpgan, tree[xpgan], tree)}
    assert {"synthaug.kit.runs", "synthaug_plugins.xpgan_projector.ctprep", "torch"} <= imported  # torch: in a function


def test_plugins_and_examples_import_only_the_facade_contract_and_kit():
    assert_plugin_boundary({**read_core(), **read_outside()}, outside_files())
