"""Three layers, never mixed (issue 10, item 5): read from the package's own imports with ``ast``.

- a check never imports a probe (checks learn what happened from events and the loop state);
- a view (``watchdog/report``) imports, of watchdog, only the event log, the formatter and other
  views (never a check, a probe's capture or the run), and a feature only through the registry;
- a feature's view (``watchdog/<feature>/view.py``) is a view: of watchdog it imports only the event
  log, the formatter and report's generic view helpers (fold's base types, markup, svg, panels),
  never its own feature's capture or checks;
- the core imports a feature only through ``core/registry.py``.
"""
from __future__ import annotations

import ast
import importlib
import pathlib

import watchdog
from watchdog.core import registry
from watchdog.report.fold import FeatureView

PACKAGE = pathlib.Path(watchdog.__file__).parent
FEATURE_PACKAGES = {name.split(".")[1] for name in registry.FEATURES if name.split(".")[1] != "core"}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: pathlib.Path) -> set[str]:
    """The watchdog modules ``path`` imports (``from . import x`` resolved), type-checking-only ones excluded."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    type_checking = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                     and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
                     for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_checking:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("watchdog")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.startswith("watchdog"):
                modules = {f"{source}.{a.name}" for a in node.names
                           if (PACKAGE.parent / (source + "." + a.name).replace(".", "/")).with_suffix(".py").exists()}
                found |= modules if len(modules) == len(node.names) else modules | {source}
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
PROBE_MODULES = {probe.__module__ for probe in registry.all_probes()}
CHECK_MODULES = {check.__module__ for check in registry.all_checks()}


def test_the_layers_are_read_from_real_modules():
    assert "watchdog.core.training" in PROBE_MODULES and "watchdog.overlap.check" in CHECK_MODULES
    assert imports_of(MODULES["watchdog.core.run"]) >= {"watchdog.core.registry", "watchdog.core.events"}


def test_no_check_imports_a_probe():
    bad = {m: sorted(imports_of(MODULES[m]) & PROBE_MODULES) for m in CHECK_MODULES}
    assert not {m: b for m, b in bad.items() if b}


VIEW_ALLOWED = {"watchdog.core.events", "watchdog.core.format", "watchdog._version", "watchdog._rich_import"}
# What a feature's view may use of report/: the generic view helpers, never the reports themselves.
GENERIC_VIEW_HELPERS = {"watchdog.report.fold", "watchdog.report.markup", "watchdog.report.svg",
                        "watchdog.report.panels"}
FEATURE_VIEW_MODULES = {view.__module__ for view in registry.views()}


def test_views_import_only_events_the_formatter_and_views():
    # The features' views, through registry.views(); the collector paused while the reports are built.
    allowed = VIEW_ALLOWED | {"watchdog.core.registry", "watchdog.core.gcpause"}
    bad = {}
    for name, path in MODULES.items():
        if not name.startswith("watchdog.report.") or name in PROBE_MODULES:
            continue  # the presentation probe attaches the dashboard: a probe, not a view
        outside = {i for i in imports_of(path) if i not in allowed and not i.startswith("watchdog.report.")}
        if outside:
            bad[name] = sorted(outside)
    assert not bad, bad


def test_every_feature_keeps_its_views_in_its_own_view_module():
    assert FEATURE_VIEW_MODULES == {f"watchdog.{feature}.view" for feature in
                                    ("overlap", "checkpoint", "evaluation", "memory", "distributed")}
    declared = {view for view in registry.views()}
    for name in MODULES:
        if name.endswith(".view") and name.split(".")[1] in FEATURE_PACKAGES:
            module = importlib.import_module(name)
            defined = {v for v in vars(module).values() if isinstance(v, type) and v.__module__ == name
                       and issubclass(v, FeatureView) and v is not FeatureView}
            assert defined and defined <= declared, (name, defined)


def test_feature_views_import_only_events_the_formatter_and_generic_view_helpers():
    bad = {}
    for name in FEATURE_VIEW_MODULES:
        outside = imports_of(MODULES[name]) - VIEW_ALLOWED - GENERIC_VIEW_HELPERS
        if outside:
            bad[name] = sorted(outside)
    assert not bad, bad


def test_the_core_imports_features_only_through_the_registry():
    bad = {}
    for name, path in MODULES.items():
        if not name.startswith("watchdog.core.") or name == "watchdog.core.registry":
            continue
        features = {i for i in imports_of(path) if i.split(".")[1:2] and i.split(".")[1] in FEATURE_PACKAGES}
        if features:
            bad[name] = sorted(features)
    assert not bad, bad
