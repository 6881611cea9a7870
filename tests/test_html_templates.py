"""Issue 13, item 11: the HTML page comes from Jinja2 templates with autoescaping, shipped as package
data; no view builds markup in Python strings (the escaping of hostile strings themselves:
tests/test_dashboard_html.py)."""
from __future__ import annotations

import ast
import fnmatch
import re
import tomllib
from pathlib import Path

import pytest
from markupsafe import Markup

import watchdog
from watchdog.core import registry
from watchdog.report.markup import macro, render

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(watchdog.__file__).parent
TEMPLATES = sorted(p for p in PACKAGE.rglob("templates/*") if p.is_file())
# The modules that make the page: the report's and every feature's view.
PAGE_MODULES = [PACKAGE / "report" / name for name in ("html.py", "markup.py", "svg.py")] + [
    PACKAGE / view.__module__.split(".")[1] / "view.py" for view in registry.views()]
HTML_TAG = re.compile(r"<(/?)(html|head|body|main|header|footer|section|div|span|p|a|b|h\d|table|thead|tbody|tr|td|th|"
                      r"code|pre|details|summary|svg|text|line|rect|circle|polyline|title|style)\b[^<>]*>")


def test_every_template_is_package_data():
    """A template missing from the wheel would break every report of an installed copy: each file
    under a package's templates/ matches a package-data glob (checked for real once with a
    non-editable `pip install .` in a fresh venv)."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    assert len(TEMPLATES) >= 10
    for path in TEMPLATES:
        relative = f"templates/{path.name}"
        assert any(fnmatch.fnmatch(relative, g) for g in globs), (path, globs)


def test_each_feature_renders_its_section_from_its_own_templates():
    features = {view.__module__.split(".")[1] for view in registry.views()}
    with_templates = {p.parent.parent.name for p in TEMPLATES}
    assert features <= with_templates, features - with_templates


@pytest.mark.parametrize("path", PAGE_MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_page_module_writes_markup_in_a_python_string(path):
    """The markup is in the templates, where autoescaping applies; code passes values."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    found = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and id(node) not in docstrings and HTML_TAG.search(node.value)]
    assert not found, found


def test_templates_escape_what_they_are_given_and_keep_markup():
    hostile = '<b>"x"</b> & \'y\''
    cell = macro("value_cell", hostile)
    assert isinstance(cell, Markup) and "<b>" not in cell and Markup(cell).unescape() == hostile
    assert macro("value_cell", [hostile, 1]).unescape() == f"{hostile}, 1"
    assert macro("value_cell", False, True) == '<span class="no">✖ missing</span>'
    assert macro("badge", '"error') == '<span class="sev sev-&#34;error">&#34;error</span>'
    assert render("macros.html") == ""  # macros only: nothing rendered outside them


def test_an_unknown_template_or_a_missing_value_fails_loudly():
    import jinja2

    with pytest.raises(jinja2.TemplateNotFound):
        render("watchdog.memory:no-such.html")
    with pytest.raises(jinja2.UndefinedError):
        render("watchdog.memory:memory.html")  # `charts` not given
