"""Redact secret-looking values from a command line before it is written to a report."""

from __future__ import annotations

import re

_SECRET_NAME = re.compile(r"(pass(word|wd)?|secret|token|api[_-]?key|access[_-]?key|auth|credential|private[_-]?key|pwd)", re.I)
_SECRET_VALUE = re.compile(
    r"^(sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}"
    r"|AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\..*)$"
)
_URL_PASSWORD = re.compile(r"(://[^/:@\s]+:)([^@/\s]+)(@)")
REDACTED = "<redacted>"


def redact_argv(argv: list[str]) -> list[str]:
    out: list[str] = []
    redact_next = False
    for arg in argv:
        if redact_next and not arg.startswith("-"):
            out.append(REDACTED)
            redact_next = False
            continue
        redact_next = False
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            if _SECRET_NAME.search(name):
                if eq:
                    out.append(f"{name}={REDACTED}")
                else:
                    out.append(arg)
                    redact_next = True
                continue
        elif "=" in arg:
            name, _, value = arg.partition("=")
            if _SECRET_NAME.search(name):
                out.append(f"{name}={REDACTED}")
                continue
        if _SECRET_VALUE.match(arg.partition("=")[2] or arg):
            out.append(REDACTED)
            continue
        out.append(_URL_PASSWORD.sub(rf"\1{REDACTED}\3", arg))
    return out
