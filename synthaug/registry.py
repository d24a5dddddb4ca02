"""The plugin registry: pluggy manager, entry-point loading, name lookup, listing, errors.

Plugins are modules advertised in the entry-point group ``synthaug`` (bundled ones too). Each hook is
called once and fills a table ``kind -> name -> Entry``. An entry's factory may be a dotted string,
imported only when the name is first used, so listing plugins never imports torch.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.metadata as metadata
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from synthaug.contract import hookspecs
from synthaug.errors import SynthaugError

GROUP = "synthaug"
KINDS = ("synthesizer", "projector", "classifier", "dataset")
_HOOK_OF_KIND = {
    "synthesizer": "register_synthesizers",
    "projector": "register_projectors",
    "classifier": "register_classifiers",
    "dataset": "register_datasets",
}


@dataclass
class Entry:
    """One registered name: what it is, where it came from, how to make it."""

    name: str
    kind: str
    factory: Any  # a callable, or "module:attr" imported on first use
    plugin: str  # the plugin (entry-point) name that registered it
    module: str  # the module holding the plugin's hooks
    version: str
    summary: str = ""

    def resolve(self) -> Callable[..., Any]:
        if isinstance(self.factory, str):
            module_name, _, attr = self.factory.partition(":")
            try:
                module = importlib.import_module(module_name)
                self.factory = getattr(module, attr) if attr else module
            except Exception as exc:  # a broken plugin: name it, keep the message on one line
                raise SynthaugError(
                    f"{self.kind} {self.name!r} from plugin {self.plugin!r} failed to load: "
                    f"{type(exc).__name__}: {exc}") from exc
        return self.factory


@dataclass
class Registry:
    manager: pluggy.PluginManager
    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    failed: dict[str, str] = field(default_factory=dict)  # plugin name -> error
    versions: dict[str, tuple[str, str]] = field(default_factory=dict)  # plugin -> (module, version)

    # ---- building ---------------------------------------------------------------------------
    def add_plugin(self, module: Any, name: str, version: str = "") -> None:
        """Register a plugin object (module or instance) by name and collect what its hooks add.

        All or nothing: the names a plugin's hooks register are committed only when every hook of the
        plugin returned; a hook that raises part-way leaves none of them registered (the plugin is
        reported in ``failed``), so no half-registered plugin is ever looked up.
        """
        if self.manager.is_blocked(name) or self.manager.get_plugin(name) is not None:
            return
        self.manager.register(module, name=name)
        self.versions[name] = (getattr(module, "__name__", type(module).__name__), version)
        pending: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        try:
            for kind, hook_name in _HOOK_OF_KIND.items():
                for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
                    if impl.plugin_name == name:
                        impl.function(register=self._registrar(kind, name, pending[kind]))
        except Exception as exc:
            self.failed[name] = f"{type(exc).__name__}: {exc}"
            return
        for kind, table in pending.items():
            self.entries[kind].update(table)

    def _registrar(self, kind: str, plugin: str, pending: dict[str, Entry]) -> Callable[..., None]:
        module, version = self.versions[plugin]

        def register(name: str, factory: Any, *, summary: str = "") -> None:
            if name in self.entries[kind] or name in pending:
                other = self.entries[kind][name].plugin if name in self.entries[kind] else plugin
                raise SynthaugError(f"{kind} {name!r} is registered twice: by {other!r} and by {plugin!r}")
            pending[name] = Entry(name, kind, factory, plugin, module, version, summary)

        return register

    # ---- lookup -----------------------------------------------------------------------------
    def names(self, kind: str, pattern: str = "*") -> list[str]:
        return sorted(n for n in self.entries[kind] if fnmatch.fnmatch(n, pattern))

    def entry(self, kind: str, name: str) -> Entry:
        if kind not in self.entries:
            raise SynthaugError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        table = self.entries[kind]
        if name in table:
            return table[name]
        known = sorted(table)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        broken = [p for p in self.failed]
        extra = f" (plugins that failed to load: {', '.join(broken)})" if broken else ""
        raise SynthaugError(
            f"unknown {kind} {name!r}; registered: {', '.join(known) or 'none'}{hint}{extra}")

    def create(self, kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
        """Make the object registered as ``name`` (factory called with the given arguments)."""
        return self.entry(kind, name).resolve()(*args, **kwargs)

    def listing(self) -> list[dict[str, str]]:
        rows = [{"name": e.name, "kind": e.kind, "module": e.module, "version": e.version,
                 "plugin": e.plugin, "summary": e.summary}
                for kind in KINDS for e in self.entries[kind].values()]
        return sorted(rows, key=lambda r: (r["kind"], r["name"]))


def disabled_plugins() -> set[str]:
    return {p.strip() for p in os.environ.get("SYNTHAUG_DISABLE_PLUGINS", "").split(",") if p.strip()}


def build_registry(load_entry_points: bool = True) -> Registry:
    """A fresh registry: every entry point in group ``synthaug`` that is not disabled."""
    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(hookspecs)
    registry = Registry(manager)
    for name in disabled_plugins():
        manager.set_blocked(name)
    if not load_entry_points:
        return registry
    seen: set[str] = set()
    for dist in metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != GROUP or ep.name in seen:
                continue
            seen.add(ep.name)
            if manager.is_blocked(ep.name):
                continue
            try:
                module = ep.load()
            except Exception as exc:  # reported by name, the others keep working
                registry.failed[ep.name] = f"{type(exc).__name__}: {exc}"
                continue
            registry.add_plugin(module, ep.name, dist.version or "")
    return registry


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _registry
    if _registry is None:
        _registry = build_registry()
    return _registry


def reset_registry() -> None:
    """Forget the process-wide registry (tests, or after installing a plugin at run time)."""
    global _registry
    _registry = None


def register_plugin(module: Any, name: str | None = None) -> None:
    """Register a plugin object at run time, e.g. a module of hooks defined in a script."""
    get_registry().add_plugin(module, name or getattr(module, "__name__", repr(module)))


def create(kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
    return get_registry().create(kind, name, *args, **kwargs)
