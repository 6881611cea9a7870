"""docs/img/make_screenshots.py (the README's screenshots) keeps working without Chromium in CI: its
dashboard step draws a real run's log into rich's SVG, offline; the images it made are small."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from fixtures import fixture_events

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "img" / "make_screenshots.py"


def load_script():
    spec = importlib.util.spec_from_file_location("make_screenshots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_dashboard_step_draws_the_run_as_it_stood_after_the_leak_was_found(tmp_path):
    script = load_script()
    events = fixture_events("memory_leak")
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    svg = script.dashboard_svg(tmp_path)
    assert svg.startswith("<svg") and 'url("http' not in svg  # offline: no web font
    width, height = script.svg_size(svg)
    assert 800 < width < 2000 and 300 < height < 1500
    text = svg.replace("&#160;", " ")
    assert "memory per epoch" in text and "memory/tensor-growth" in text and "run in progress" in text


def test_the_screenshots_are_in_the_repo_small_and_shown_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    top = readme[:readme.index("\n## Install")]
    for name in ("dashboard.png", "report.png"):
        png = ROOT / "docs" / "img" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 20_000 < png.stat().st_size < 300_000, name
        assert f"](docs/img/{name})" in top, name
