"""Secrets in argv never reach the report files (issue 9, item 9)."""

from __future__ import annotations

import sys

import pytest

import watchdog
from watchdog.core.redact import REDACTED, redact_argv

WANDB_KEY = "0123456789abcdef0123456789abcdef01234567"  # 40 hex
GITHUB_PAT = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789"
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
BEARER = "eyJhbGciOi.abcdefghijklmnop.qrstuv-opaque-Token-123"


@pytest.mark.parametrize("argv, expected", [
    (["--wandb-key", WANDB_KEY], ["--wandb-key", REDACTED]),
    (["--header", f"Authorization: Bearer {BEARER}"], ["--header", f"Authorization: Bearer {REDACTED}"]),
    (["-H", "authorization: token abc123def456"], ["-H", f"authorization: token {REDACTED}"]),
    (["--header", "Bearer abc123def456ghi"], ["--header", f"Bearer {REDACTED}"]),
    ([GITHUB_PAT], [REDACTED]),
    (["--repo-token", GITHUB_PAT], ["--repo-token", REDACTED]),
    ([AWS_ID, AWS_SECRET], [REDACTED, REDACTED]),
    ([AWS_SECRET], [REDACTED]),
    (["--key=s3cr3t-value"], [f"--key={REDACTED}"]),
    (["--key", "s3cr3t-value"], ["--key", REDACTED]),
    (["--apiKey=abc"], [f"--apiKey={REDACTED}"]),
    (["wandb.key=abc"], [f"wandb.key={REDACTED}"]),
    (["--db-password", "hunter2", "--lr", "0.1"], ["--db-password", REDACTED, "--lr", "0.1"]),
])
def test_secret_shapes_are_redacted(argv, expected):
    assert redact_argv(["train.py", *argv]) == ["train.py", *expected]


@pytest.mark.parametrize("argv", [
    ["--author", "Ada Lovelace"],
    ["--keyboard-layout", "dvorak"],
    ["--monkey", "george"],
    ["--data", "/datasets/imagenet/train", "--out", "runs/exp1/checkpoints/last.pt"],
    ["--commit", "3f2a9c0d1e4b5a6978c0d1e2f3a4b5c6d7e8f9a0"],  # a git SHA (hex, one case)
    ["--lr", "3e-4", "--epochs", "10", "--tokenizer", "bpe", "--authorize-url", "https://example.com/x"],
    ["--header", "Content-Type: application/json"],
])
def test_ordinary_arguments_are_kept(argv):
    assert redact_argv(["train.py", *argv]) == ["train.py", *argv]


def test_a_path_shaped_like_an_aws_secret_key_is_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "ImageNet2012" / "trainval").mkdir(parents=True)
    path = "data/ImageNet2012/trainval/n01440764XYZa"  # 40 characters, mixed case and digits
    assert len(path) == 40
    assert redact_argv(["train.py", path]) == ["train.py", path]


def test_url_passwords_are_redacted():
    assert redact_argv(["--db", "postgres://me:pw123@host/db"]) == ["--db", f"postgres://me:{REDACTED}@host/db"]


def test_no_secret_reaches_any_report_file(report_dir, monkeypatch):
    secrets = [WANDB_KEY, BEARER, GITHUB_PAT, AWS_SECRET, "s3cr3t-value"]
    monkeypatch.setattr(sys, "argv", ["train.py", "--wandb-key", WANDB_KEY, "--header", f"Authorization: Bearer {BEARER}",
                                      GITHUB_PAT, AWS_ID, AWS_SECRET, "--key=s3cr3t-value", "--author", "ada"])
    with watchdog.watch(report_dir=report_dir, summary=False):
        pass
    files = sorted(p for p in report_dir.iterdir() if p.is_file())
    assert {p.name for p in files} >= {"report.json", "events.jsonl", "report.html"}
    for path in files:
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, (path.name, secret)
        if path.suffix in (".json", ".jsonl"):
            assert "ada" in text and "--author" in text


def test_the_live_dashboard_starts_from_the_redacted_argv(tmp_path, monkeypatch):
    import io
    import sys

    import watchdog
    from watchdog.report.dashboard import Dashboard

    secret = "sk-" + "a1B2c3D4" * 5
    monkeypatch.setattr(sys, "argv", ["train.py", "--api-key", secret, "--epochs", "3"])
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, dashboard=False) as run:
        view = Dashboard(run, mode="lines", line_stream=io.StringIO()).view
    assert view.argv[:2] == ["train.py", "--api-key"] and view.argv[3:] == ["--epochs", "3"]
    assert secret not in " ".join(view.argv)
    assert view.run_id == run.run_id and {c.name for c in run.checks} <= set(view.checks)
