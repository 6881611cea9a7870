"""``import torch_watchdog`` gives the same API and survives a mixed install (issue 13 item 9)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import torch_watchdog
import watchdog

ROOT = Path(__file__).resolve().parents[1]


def test_the_alias_gives_the_same_public_names():
    assert sorted(torch_watchdog.__all__) == sorted(watchdog.__all__)
    for name in watchdog.__all__:
        assert getattr(torch_watchdog, name) is getattr(watchdog, name), name


def test_the_alias_works_when_another_package_overwrote_watchdog_init(tmp_path):
    """The filesystem-events package's __init__.py in place of ours: torch_watchdog still watches."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "watchdog", site / "watchdog")
    shutil.copytree(ROOT / "torch_watchdog", site / "torch_watchdog")
    (site / "watchdog" / "__init__.py").write_text('"""the other watchdog: file system events"""\n')
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import torch_watchdog as watchdog, watchdog as other
        assert not hasattr(other, "watch")
        with watchdog.watch(report_dir="wd", summary=False, dashboard=False) as run:
            pass
        print("status", run.status)
    """))
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); "
                           f"exec(open({str(script)!r}).read())"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "status" in proc.stdout
