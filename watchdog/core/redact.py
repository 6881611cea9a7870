"""Redact secret-looking values from a command line before it is written to a report.

Three ways a secret is recognised:

- by the option's name: ``--token X``, ``--wandb-key=X``, ``db.password=X``. The name is split
  into words (``-``, ``_``, ``.``, camelCase) and one word must be a secret word (``key``,
  ``token``, ``password``, ``auth``, ...), so ``--author`` or ``--keyboard-layout`` stay as they are;
- by the shape of the value alone: provider tokens (``sk-``, ``hf_``, ``ghp_``, ``github_pat_``,
  ``xox?-``, AWS ``AKIA...`` ids and 40-character secret keys, JWTs);
- inside a value: an ``Authorization:`` header or a ``Bearer``/``Basic``/``Token`` credential, and a
  password in a URL (``https://user:pw@host``).
"""

from __future__ import annotations

import os
import re

_SECRET_WORDS = frozenset({
    "pass", "password", "passwd", "passphrase", "pwd", "secret", "secrets", "token", "tokens", "key", "apikey",
    "auth", "authorization", "credential", "credentials", "cookie", "privatekey", "accesskey", "secretkey",
})
_WORD_SPLIT = re.compile(r"[-_.\s:/]+|(?<=[a-z0-9])(?=[A-Z])")
_SECRET_VALUE = re.compile(
    r"^(sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[abpr]-[A-Za-z0-9-]{10,}|(AKIA|ASIA)[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\..*)$"
)
# An AWS secret access key: 40 characters of base64 with upper and lower case letters and digits
# (a hex digest, all one case, is not one; neither is a path with an extension or a dash, nor one
# whose directory exists).
_AWS_SECRET_KEY = re.compile(r"^(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9])[A-Za-z0-9/+]{40}$")
_CREDENTIAL = re.compile(
    r"(?i)((?:proxy-)?authorization\s*:\s*(?:(?:bearer|basic|token|digest)\s+)?|\b(?:bearer|basic)\s+)\S.*$"
)
_URL_PASSWORD = re.compile(r"(://[^/:@\s]+:)([^@/\s]+)(@)")
REDACTED = "<redacted>"


def is_secret_name(name: str) -> bool:
    """Whether an option or key name says its value is a secret (one of its words is a secret word)."""
    return any(word.lower() in _SECRET_WORDS for word in _WORD_SPLIT.split(name.lstrip("-+")) if word)


def is_secret_value(value: str) -> bool:
    if _SECRET_VALUE.match(value):
        return True
    return bool(_AWS_SECRET_KEY.match(value)) and not _is_existing_path(value)


def _is_existing_path(value: str) -> bool:
    """A value with ``/`` whose directory exists is a path (an output file need not exist yet)."""
    if "/" not in value:
        return False
    try:
        return os.path.isdir(os.path.dirname(value))
    except (OSError, ValueError):
        return False


def redact_argv(argv: list[str]) -> list[str]:
    out: list[str] = []
    redact_next = False
    for arg in argv:
        arg = str(arg)
        if redact_next and not arg.startswith("-"):
            out.append(REDACTED)
            redact_next = False
            continue
        redact_next = False
        name, eq, value = arg.partition("=")
        if arg.startswith("-") and is_secret_name(name):
            if eq:
                out.append(f"{name}={REDACTED}")
            else:
                out.append(arg)
                redact_next = True
            continue
        if eq and not arg.startswith("-") and is_secret_name(name):
            out.append(f"{name}={REDACTED}")
            continue
        if is_secret_value(value if eq else arg):
            out.append(f"{name}={REDACTED}" if eq and arg.startswith("-") else REDACTED)
            continue
        arg = _CREDENTIAL.sub(rf"\1{REDACTED}", arg)
        out.append(_URL_PASSWORD.sub(rf"\1{REDACTED}\3", arg))
    return out
