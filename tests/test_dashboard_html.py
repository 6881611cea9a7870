"""Issue 6: the self-contained HTML report: structure, charts, escaping, and a real browser.

The event streams are the examples' real runs, recorded by tests/fixtures/record.py."""
from __future__ import annotations

import html.parser
import json
import os
import shutil
import subprocess
import tempfile

import markupsafe
import pytest

from fixtures import fixture_events, fixture_names, replace_text, write_log
from watchdog.core.format import fmt_bytes
from watchdog.report.html import render_html, write_html
from watchdog.report.fold import RunView

HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'


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


@pytest.mark.parametrize("name", fixture_names())
def test_report_is_self_contained_and_has_every_section(name):
    tree = parse(render_html(RunView.from_events(fixture_events(name))))
    ids = {a.get("id") for _, a in tree.tags if a.get("id")}
    assert {"findings", "memory", "cadence", "overlap", "checkpoints", "passes", "details"} <= ids
    # no scripts, no external resources: readable offline
    assert not tree.find("script") and not tree.find("link") and not tree.find("img")
    for _, a in tree.tags:
        for k, v in a.items():
            assert not (k in ("src", "href") and v and "://" in v), (k, v)


def test_report_of_the_leaking_run_charts_each_memory_source_per_epoch():
    events = fixture_events("memory_leak")
    tree = parse(render_html(RunView.from_events(events)))
    sources = [a["data-source"] for a in tree.find("div", **{"data-chart": "memory"})]
    assert sources == ["rss_bytes", "tensor_bytes", "tensors", "graph_bytes", "graph_tensors"]
    assert len(tree.find("div", **{"data-chart": "cadence"})) == 1
    assert not tree.find("div", **{"data-chart": "overlap"})              # nothing overlapped
    assert len(tree.find("svg")) == 6
    assert len(tree.find("polyline")) == 5 and len(tree.find("circle")) == 30   # 6 epochs x 5 sources
    text = " ".join(tree.text)
    growth = [e["data"] for e in events if e["kind"] == "finding" and e["data"]["code"] == "memory/tensor-growth"]
    assert growth[-1]["message"] in text and growth[-1]["fix"] in text
    assert growth[-1]["where"] == "memory_leak.py:29 in train_with_memory_leak()"
    assert growth[-1]["where"] in text                                     # where
    assert "`optimizer` (Adam)" in text and "`model` (Sequential)" in text  # run details


def test_report_of_the_cadence_run_names_the_epochs_without_evaluation():
    tree = parse(render_html(RunView.from_events(fixture_events("eval_cadence_every2"))))
    assert len(tree.find("rect", **{"class": "bar-eval"})) == 6
    assert ("3 of 6 epochs were evaluated (by evaluation pass over `val_loader`, no_grad forwards of `model` (Sequential)); "
            "without evaluation: "
            "epochs 0, 2, 4; flagged: epochs 0, 2, 4.") in " ".join(tree.text)


def test_report_of_the_overlap_run_charts_the_overlap():
    tree = parse(render_html(RunView.from_events(fixture_events("overlap_bug"))))
    assert len(tree.find("div", **{"data-chart": "overlap"})) == 1
    text = " ".join(tree.text)
    assert "332 of 400 validation samples (83.0%) served by `val_loader`" in text
    overlap = text.split("Train / eval overlap")[-1].split("Checkpoints")[0]
    assert "332 / 400" in overlap and "overlap/train-eval" in overlap


def test_report_checkpoint_table_says_what_each_save_held():
    events = fixture_events("checkpoint_seed_save")
    text = " ".join(parse(render_html(RunView.from_events(events))).text)
    rows = text.split("Checkpoints")[-1].split("DataLoader passes")[0]
    size = fmt_bytes(next(e["data"]["bytes"] for e in events if e["kind"] == "checkpoint_saved"))
    assert rows.count("/tmp/watchdog-fixture/checkpoint.pt") == 3
    assert "epochs done" in rows and "after epoch" not in rows  # a count, not an epoch number
    assert rows.count("4 tensors") == 3 and rows.count(size) == 3
    assert rows.count("✔ equal") == 1                      # read back once, the first save
    assert "checkpoint/missing-optimizer-state" in rows and "checkpoint/missing-scheduler-state" in rows
    assert "✖ missing" in rows   # the optimizer column, flagged by the finding about this save


def test_every_user_string_is_escaped():
    # The recorded overlap run, with its loaders' and checkpoint's names swapped for markup.
    events = fixture_events("overlap_bug")
    assert replace_text(events, "val_loader", "val_loader" + HOSTILE) >= 5
    assert replace_text(events, "train_loader", "train_loader" + HOSTILE) >= 5
    view = RunView.from_events(events)
    text = render_html(view)
    tree = parse(text)
    assert not tree.find("script") and not tree.find("img")
    assert "<script>" not in text and "<img" not in text
    assert text.count(str(markupsafe.escape("<script>alert(\"x\")</script>"))) >= 8
    # the hostile string survives as text, byte for byte, where it was shown
    assert "val_loader" + HOSTILE in "".join(tree.text)


# Where a run puts a name or a path the user chose: loaders, a checkpoint's path, a container's name,
# the script's file (argv, every finding's `where`), the model's variable.
USER_STRINGS = ("val_loader", "train_loader", "checkpoint.pt", "all_losses", "all_outputs", ".py", "`model`")
HOSTILE_QUOTES = HOSTILE + "'q'\"&amp;"


@pytest.mark.parametrize("name", fixture_names())
def test_a_hostile_name_path_or_message_comes_out_escaped_everywhere_on_the_page(name):
    """Markup, both quotes and ``&`` in every user string of a real run: the page has no element or
    attribute the plain run's page has not, and wherever the string shows (text, a tooltip, an
    aria-label, a link, the evidence) it reads back whole, as text."""
    plain = parse(render_html(RunView.from_events(fixture_events(name))))
    events = fixture_events(name)
    swapped = sum(replace_text(events, s, s + HOSTILE_QUOTES) for s in USER_STRINGS)
    assert swapped >= 5, swapped  # every recorded run names loaders, its script, its model
    page = render_html(RunView.from_events(events))
    tree = parse(page)
    assert {tag for tag, _ in tree.tags} <= {tag for tag, _ in plain.tags}
    assert {k for _, attrs in tree.tags for k in attrs} <= {k for _, attrs in plain.tags for k in attrs}
    for raw in ("<script", "<img", "'q'", '"&amp;', "&<", "onerror=alert(1)>"):
        assert raw not in page, raw
    shown = [*tree.text, *(v for _, attrs in tree.tags for v in attrs.values() if v)]
    whole = sum(s.count(HOSTILE_QUOTES) for s in shown)
    assert whole >= 3
    as_json = json.dumps(HOSTILE_QUOTES, ensure_ascii=False)[1:-1]  # inside the evidence
    for s in shown:
        # each place holds it whole, as text or as JSON text, or cut with an ellipsis (a chart's
        # label): never a piece cut off by a quote that ended an attribute
        rest = s.replace(HOSTILE_QUOTES, "").replace(as_json, "")
        assert "alert(" not in rest or "…" in rest, s[:300]


def test_an_empty_or_crashed_run_still_renders(tmp_path):
    parse(render_html(RunView()))
    events = fixture_events("overlap_bug")
    cut = [i for i, e in enumerate(events) if e["kind"] == "epoch_end"][1]   # killed after epoch 2's end
    log = write_log(tmp_path, events[:cut + 1], torn_tail=json.dumps(events[cut + 1])[:50])
    view = RunView.from_log(log)
    out = write_html(view, tmp_path)
    assert out == tmp_path / "report.html"
    tree = parse(out.read_text(encoding="utf-8"))
    assert "in progress" in " ".join(tree.text)  # no run_end: the view cannot say how it ended
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
    events = fixture_events("overlap_bug")
    replace_text(events, "val_loader", "val_loader" + HOSTILE)
    page = write_html(RunView.from_events(events), tmp_path)
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
    charts = page.read_text(encoding="utf-8").count("<svg")
    assert charts >= 3 and dom.stdout.count("<svg") == charts  # every chart the page holds
    assert "<script" not in dom.stdout and "<img" not in dom.stdout
