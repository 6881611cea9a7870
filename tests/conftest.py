import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture
def report_dir(tmp_path):
    return tmp_path / "wd"


@pytest.fixture(autouse=True)
def _no_leftover_run():
    import watchdog

    yield
    assert watchdog.current_run() is None, "a test left a watchdog run active"
