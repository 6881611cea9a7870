"""Issue 6: the self-contained HTML report: structure, charts, escaping, and a real browser."""
from __future__ import annotations

import html.parser
import os
import shutil
import subprocess
import tempfile

import pytest

from _dashboard_events import HOSTILE, sample_events, write_log
from watchdog.report.html import render_html, write_html
from watchdog.report.fold import RunView


class Tree(html.parser.HTMLParser):
    """Collects tags, attributes and text; fails on any script or external reference."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in ("meta", "br", "circle", "line", "rect", "polyline", "img", "input"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in ("circle", "line", "rect", "polyline"):
            return
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag, **attrs):
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def parse(text: str) -> Tree:
    tree = Tree()
    tree.feed(text)
    tree.close()
    assert tree.stack == [], tree.stack
    return tree


def test_report_is_self_contained_and_has_every_section_and_chart():
    view = RunView.from_events(sample_events(epochs=6, eval_every=2))
    tree = parse(render_html(view))
    ids = {a.get("id") for _, a in tree.tags if a.get("id")}
    assert {"findings", "checks", "memory", "cadence", "overlap", "checkpoints", "passes", "details"} <= ids
    # no scripts, no external resources: readable offline
    assert not tree.find("script") and not tree.find("link") and not tree.find("img")
    for _, a in tree.tags:
        for k, v in a.items():
            assert not (k in ("src", "href") and v and "://" in v), (k, v)
    # charts: one memory chart per source, the cadence chart, the overlap chart
    sources = [a["data-source"] for a in tree.find("div", **{"data-chart": "memory"})]
    assert sources == ["rss_bytes", "tensor_bytes", "tensors", "graph_bytes", "graph_tensors"]
    assert len(tree.find("div", **{"data-chart": "cadence"})) == 1
    assert len(tree.find("div", **{"data-chart": "overlap"})) == 1
    assert len(tree.find("svg")) == 7
    assert len(tree.find("polyline")) == 5 and len(tree.find("circle")) == 30   # 6 epochs x 5 sources
    assert len(tree.find("rect", **{"class": "bar-eval"})) == 6
    text = " ".join(tree.text)
    assert "3 of 6 epochs were evaluated (by evaluation pass over val_loader); without evaluation: epochs 0, 2, 4; the cadence check flagged none." in text
    assert "120 of 320 samples served by val_loader" in text
    assert "append loss.item() instead of loss" in text          # the fix
    assert "train.py:12 in train()" in text                      # where
    assert "`opt` (Adam)" in text and "TensorDataset" in text     # run details
    # the checkpoint table says what it held
    rows = text.split("Checkpoints")[-1].split("DataLoader passes")[0]
    assert "/ckpt/epoch2.pt" in rows and "4 tensors" in rows and "47.1 KiB" in rows
    assert "✔ equal" in rows and "checkpoint/optimizer-missing" in rows
    assert "✖ missing" in rows   # the optimizer column, flagged by the finding about this save


def test_every_user_string_is_escaped():
    view = RunView.from_events(sample_events(epochs=4, hostile=True))
    text = render_html(view)
    tree = parse(text)
    assert not tree.find("script") and not tree.find("img")
    assert "<script>" not in text and "<img" not in text
    assert text.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 8
    # the hostile string survives as text, byte for byte, where it was shown
    assert HOSTILE in "".join(tree.text)


def test_an_empty_or_crashed_run_still_renders(tmp_path):
    parse(render_html(RunView()))
    log = write_log(tmp_path, sample_events(epochs=3)[:12], truncate_tail=True)
    view = RunView.from_log(log)
    out = write_html(view, tmp_path)
    assert out == tmp_path / "report.html"
    tree = parse(out.read_text(encoding="utf-8"))
    assert "running" in " ".join(tree.text)
    assert "1 unreadable lines skipped" in " ".join(tree.text)
    assert not list(tmp_path.glob(".report*"))  # the atomic write left no temp file
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask  # readable like any file the user writes


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(_chromium() is None, reason="headless chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    view = RunView.from_events(sample_events(epochs=6, eval_every=2, hostile=True))
    page = write_html(view, tmp_path)
    png = tmp_path / "shot.png"
    profile = tempfile.mkdtemp(prefix="wd-chromium-")
    try:
        p = subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1200,2000",
             page.as_uri()],
            capture_output=True, text=True, timeout=120)
        dom = subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert png.exists() and png.stat().st_size > 20_000, p.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the DOM the browser built: charts present, no script element came from user strings
    assert dom.stdout.count("<svg") == 7
    assert "<script" not in dom.stdout and "<img" not in dom.stdout
