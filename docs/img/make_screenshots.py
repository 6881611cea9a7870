"""Regenerate the README's screenshots from a real run: docs/img/dashboard.png and docs/img/report.png.

    python docs/img/make_screenshots.py            # needs a headless Chromium: apt-get install chromium

What it does:

1. runs ``examples/memory_leak.py`` under ``python -m watchdog run`` (with the live-tensor census
   every epoch, as the README's quick start does) in a temporary directory;
2. the dashboard: replays that run's ``events.jsonl`` into a ``RunView`` up to the moment the
   leak was found (the epoch after it), and draws the same renderable the live dashboard draws
   (``report.panels.DashboardRenderable``) into a recording rich console, 100 columns wide;
   rich exports it as SVG, which Chromium rasterises;
3. the HTML report: Chromium's screenshot of the run's own ``report.html`` (its top: the summary,
   the findings, the memory charts).

Only this script needs Chromium; no test does. The images are kept under 300 KB each.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
OUT = pathlib.Path(__file__).resolve().parent
EXAMPLE = REPO / "examples" / "memory_leak.py"
MAX_BYTES = 300_000
COLUMNS = 100
REPORT_WINDOW = (1180, 1650)  # the page's top: summary, findings, checks, memory charts


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("make_screenshots: no headless Chromium found (Debian/Ubuntu: apt-get install -y chromium)")


def screenshot(page: pathlib.Path, png: pathlib.Path, width: int, height: int) -> None:
    """Chromium's headless screenshot of `page` in a `width` x `height` window, offline."""
    with tempfile.TemporaryDirectory(prefix="wd-chromium-") as profile:
        proc = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--force-device-scale-factor=1", f"--user-data-dir={profile}", f"--screenshot={png}",
             f"--window-size={width},{height}", page.as_uri()],
            capture_output=True, text=True, timeout=180)
    if proc.returncode != 0 or not png.is_file():
        sys.exit(f"make_screenshots: chromium failed on {page}:\n{proc.stderr[-2000:]}")


def run_example(work: pathlib.Path) -> pathlib.Path:
    """The example under `watchdog run`, as a user runs it; returns its report directory."""
    report_dir = work / "watchdog-report"
    env = {**os.environ, "WATCHDOG_MEMORY_CENSUS": "every-epoch",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    # from the checkout, as the README's quick start runs it (the page shows this command line)
    proc = subprocess.run([sys.executable, "-m", "watchdog", "run", "--report-dir", str(report_dir),
                           str(EXAMPLE.relative_to(REPO))],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not (report_dir / "report.html").is_file():
        sys.exit(f"make_screenshots: the example run failed:\n{proc.stderr[-3000:]}")
    return report_dir


def dashboard_svg(report_dir: pathlib.Path) -> str:
    """The dashboard as it stood one epoch after the leak was found, as rich's SVG export."""
    sys.path.insert(0, str(REPO))
    from rich.console import Console

    from watchdog.report.fold import RunView
    from watchdog.report.panels import DashboardRenderable

    events = [json.loads(line) for line in (report_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    found = next(i for i, e in enumerate(events) if e["kind"] == "finding"
                 and e["data"].get("code", "").startswith("memory/"))
    after = next((i for i, e in enumerate(events) if i > found and e["kind"] == "epoch_end"), len(events) - 1)
    view = RunView.from_events(events[:after + 1])
    console = Console(record=True, width=COLUMNS, height=40, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor")
    console.print(DashboardRenderable(view))
    svg = console.export_svg(title=f"watchdog run examples/{EXAMPLE.name}")
    # Offline: rich's SVG names a web font; keep only the local fallbacks.
    return re.sub(r',?\s*url\("https?://[^"]*"\)\s*format\("[^"]*"\)', "", svg)


def svg_size(svg: str) -> tuple[int, int]:
    m = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg)
    assert m, "rich's SVG has no viewBox"
    return int(float(m.group(1))) + 1, int(float(m.group(2))) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=OUT, help="where the PNGs go (default: docs/img)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wd-screenshots-") as tmp:
        work = pathlib.Path(tmp)
        report_dir = run_example(work)

        svg = dashboard_svg(report_dir)
        width, height = svg_size(svg)
        page = work / "dashboard.html"
        page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><style>html,body{margin:0;'
                        'background:#fff}svg{display:block}</style></head><body>' + svg + "</body></html>",
                        encoding="utf-8")
        screenshot(page, args.out / "dashboard.png", width, height)

        screenshot(report_dir / "report.html", args.out / "report.png", *REPORT_WINDOW)

    for name in ("dashboard.png", "report.png"):
        size = (args.out / name).stat().st_size
        print(f"{args.out / name}: {size / 1024:.0f} KiB")
        if size > MAX_BYTES:
            sys.exit(f"make_screenshots: {name} is {size} bytes, over {MAX_BYTES}: make its window smaller")


if __name__ == "__main__":
    main()
