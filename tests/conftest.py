import atexit
import os
import shutil
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Compiled templates (report/markup.py) go to a cache of the test session's, not the user's: set
# before anything renders, and inherited by the processes the tests start.
if "WATCHDOG_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="watchdog-test-cache-")
    os.environ["WATCHDOG_CACHE_DIR"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, True)


@pytest.fixture
def report_dir(tmp_path):
    return tmp_path / "wd"


@pytest.fixture(autouse=True)
def _no_leftover_run():
    import watchdog

    yield
    assert watchdog.current_run() is None, "a test left a watchdog run active"


_REPORT_VALIDATOR = None


def report_validator():
    """A validator for report.json's published schema (watchdog/report/report.schema.json)."""
    global _REPORT_VALIDATOR
    if _REPORT_VALIDATOR is None:
        import jsonschema

        from watchdog.report.jsonreport import load_schema

        schema = load_schema()
        jsonschema.Draft202012Validator.check_schema(schema)
        _REPORT_VALIDATOR = jsonschema.Draft202012Validator(schema)
    return _REPORT_VALIDATOR


def validate_report_file(path) -> None:
    """Raise AssertionError naming each place ``path`` departs from report.json's schema."""
    import json

    report = json.loads(path.read_text(encoding="utf-8"))
    errors = sorted(report_validator().iter_errors(report), key=lambda e: list(e.absolute_path))
    assert not errors, f"{path} does not follow report.schema.json:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:300]}" for e in errors[:10])


@pytest.fixture(autouse=True)
def _report_json_follows_the_schema(request):
    """Every report.json a test leaves under its tmp_path follows the published schema (issue 13)."""
    wanted = "tmp_path" in request.fixturenames and not request.node.get_closest_marker("foreign_report_json")
    root = request.getfixturevalue("tmp_path") if wanted else None  # set up first, so torn down after this
    yield
    if root is None:
        return
    try:
        import jsonschema  # noqa: F401  (the [test] extra installs it)
    except ImportError:
        return
    for path in sorted(root.rglob("report.json")):
        if path.is_file() and not path.is_symlink():
            validate_report_file(path)
