"""Compiled templates kept between processes (report/markup.py): the same page with or without the
cache, from a cold or a warm one; a template changed since is compiled again; a cache directory that
cannot be made, is not private, cannot be written, or holds garbage is no cache, never an error."""
from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from watchdog.report import html, markup
from watchdog.report.fold import RunView

FIXTURES = Path(__file__).parent / "fixtures"
GENERATED = re.compile(r"on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC from")  # the page's own render time


def page(view: RunView) -> str:
    """The whole page, rendered by a new environment (as a new process does: nothing in memory)."""
    markup._ENVIRONMENT = None
    try:
        return GENERATED.sub("on <generated> from", html.render_html(view))
    finally:
        markup._ENVIRONMENT = None


@pytest.fixture
def view() -> RunView:
    return RunView.from_log(FIXTURES / "memory_leak.events.jsonl")  # charts, tables, findings


@pytest.fixture
def no_compile(monkeypatch):
    """Compiling a template raises: what renders then was loaded from the cache."""
    import jinja2

    def refuse(self, *args, **kwargs):
        raise AssertionError("compiled a template the cache should have held")

    return lambda: monkeypatch.setattr(jinja2.Environment, "compile", refuse)


def cached_files(root: Path) -> list[Path]:
    return sorted(root.glob("templates-*/*.jinja"))


def test_the_page_is_the_same_without_cache_from_a_cold_one_and_from_a_warm_one(view, tmp_path, monkeypatch,
                                                                                 no_compile):
    monkeypatch.setenv(markup.CACHE_DIR_ENV, "")
    without = page(view)
    cache = tmp_path / "cache"
    monkeypatch.setenv(markup.CACHE_DIR_ENV, str(cache))
    assert page(view) == without  # compiled, then written
    assert len(cached_files(cache)) >= 5  # the page, macros, charts, the memory section...
    directory = cached_files(cache)[0].parent
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700 and stat.S_IMODE(cache.stat().st_mode) == 0o700
    no_compile()
    assert page(view) == without  # loaded


def test_a_template_changed_since_it_was_cached_is_compiled_again(tmp_path, monkeypatch):
    package = tmp_path / "pkg" / "wd_cache_probe"
    (package / "templates").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    template = package / "templates" / "t.html"
    template.write_text("first {{ x }}")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.setenv(markup.CACHE_DIR_ENV, str(tmp_path / "cache"))

    def rendered() -> str:
        markup._ENVIRONMENT = None
        try:
            return str(markup.render("wd_cache_probe:t.html", x="<1>"))
        finally:
            markup._ENVIRONMENT = None

    assert rendered() == "first &lt;1&gt;"
    (cached,) = cached_files(tmp_path / "cache")
    before = cached.read_bytes()
    template.write_text("second {{ x }}!")
    assert rendered() == "second &lt;1&gt;!"
    assert cached.read_bytes() != before  # the new compilation replaced the old one
    assert rendered() == "second &lt;1&gt;!"


def test_the_cache_key_changes_with_the_versions_and_the_settings(tmp_path, monkeypatch):
    import jinja2

    monkeypatch.setenv(markup.CACHE_DIR_ENV, str(tmp_path))
    settings = dict(autoescape=True, trim_blocks=True)
    first = markup._bytecode_cache(jinja2, settings).directory
    assert markup._bytecode_cache(jinja2, dict(settings)).directory == first
    assert markup._bytecode_cache(jinja2, dict(settings, trim_blocks=False)).directory != first
    monkeypatch.setattr(markup, "__version__", "0.0.0-other")
    assert markup._bytecode_cache(jinja2, settings).directory != first


def test_where_the_cache_goes(tmp_path, monkeypatch):
    monkeypatch.delenv(markup.CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert markup.cache_dir() == tmp_path / "xdg" / "watchdog"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: only absolute paths count
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert markup.cache_dir() == tmp_path / "home" / ".cache" / "watchdog"
    monkeypatch.setenv(markup.CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert markup.cache_dir() == tmp_path / "mine"
    monkeypatch.setenv(markup.CACHE_DIR_ENV, "")
    assert markup.cache_dir() is None


def _a_file(tmp_path: Path) -> Path:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    return blocker / "cache"


def _shared(tmp_path: Path) -> Path:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone may write there: compiled code from it is never loaded
    return shared


@pytest.mark.parametrize("where", [_a_file, _shared], ids=["under-a-file", "world-writable"])
def test_a_cache_dir_that_cannot_be_made_or_is_not_private_is_not_used(where, view, tmp_path, monkeypatch):
    monkeypatch.setenv(markup.CACHE_DIR_ENV, "")
    without = page(view)
    directory = where(tmp_path)
    monkeypatch.setenv(markup.CACHE_DIR_ENV, str(directory))
    assert page(view) == without
    assert not (directory.exists() and cached_files(directory))


def test_a_cache_that_cannot_be_written_changes_nothing(view, tmp_path, monkeypatch):
    """Writes fail (a read-only or full disk: EACCES even for root); the page is rendered as ever."""
    import jinja2.bccache

    monkeypatch.setenv(markup.CACHE_DIR_ENV, "")
    without = page(view)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(jinja2.bccache.tempfile, "NamedTemporaryFile", refuse)
    monkeypatch.setenv(markup.CACHE_DIR_ENV, str(tmp_path / "cache"))
    assert page(view) == without
    assert cached_files(tmp_path / "cache") == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_cache_dir_changes_nothing(view, tmp_path, monkeypatch):
    monkeypatch.setenv(markup.CACHE_DIR_ENV, "")
    without = page(view)
    cache = tmp_path / "cache"
    monkeypatch.setenv(markup.CACHE_DIR_ENV, str(cache))
    page(view)
    for directory in (cache, *cache.iterdir()):
        directory.chmod(0o500)
    for cached in cached_files(cache):
        cached.chmod(0o000)
    try:
        assert page(view) == without
    finally:
        for directory in (cache, *cache.iterdir()):
            directory.chmod(0o700)


def test_garbage_in_the_cache_is_compiled_over(view, tmp_path, monkeypatch, no_compile):
    cache = tmp_path / "cache"
    monkeypatch.setenv(markup.CACHE_DIR_ENV, str(cache))
    cold = page(view)
    for i, cached in enumerate(cached_files(cache)):
        cached.write_bytes([b"", b"j2 not a template", os.urandom(300)][i % 3])
    assert page(view) == cold
    no_compile()
    assert page(view) == cold  # what was garbage holds the compiled templates again


def test_a_new_process_renders_from_the_cache(tmp_path):
    """Two processes, one cache: the second compiles nothing."""
    script = (
        "import sys, jinja2\n"
        "from watchdog.report import html\n"
        "from watchdog.report.fold import RunView\n"
        "if sys.argv[1] == 'warm':\n"
        "    def refuse(*a, **k): raise SystemExit('compiled a cached template')\n"
        "    jinja2.Environment.compile = refuse\n"
        f"html.render_html(RunView.from_log({str(FIXTURES / 'overlap_bug.events.jsonl')!r}))\n"
    )
    env = {**os.environ, markup.CACHE_DIR_ENV: str(tmp_path / "cache")}
    root = str(Path(__file__).resolve().parent.parent)
    for state in ("cold", "warm"):
        done = subprocess.run([sys.executable, "-c", script, state], cwd=root, env=env, capture_output=True, text=True)
        assert done.returncode == 0, (state, done.stderr[-2000:])
