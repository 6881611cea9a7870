"""Run a script as ``__main__`` exactly as ``python script.py args...`` would.

``sys.argv`` is ``[script, *args]`` (the path as given), ``sys.path[0]`` the script's directory,
``__file__`` its absolute path, ``__name__ == "__main__"`` (so DataLoader workers started with
``spawn`` re-import it as Python does). An uncaught exception is printed through ``sys.excepthook``
with watchdog's and runpy's frames trimmed off, as Python would print it.
"""

from __future__ import annotations

import builtins
import io
import os
import runpy
import signal
import sys
import types
import zipfile
from importlib.machinery import SourceFileLoader
from types import TracebackType

from .core.frames import is_user_file


class ScriptNotFound(Exception):
    pass


def run_script(script: str, args: list[str]) -> None:
    """Execute ``script``; exceptions (``SystemExit`` included) propagate to the caller."""
    path = os.path.abspath(script)
    if not os.path.exists(path):
        raise ScriptNotFound(f"can't open file {path!r}: [Errno 2] No such file or directory")
    saved_argv, saved_path0 = sys.argv, sys.path[0] if sys.path else None
    sys.argv = [script, *args]
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    if sys.path:
        sys.path[0] = directory
    else:
        sys.path.insert(0, directory)
    try:
        if os.path.isdir(path) or not path.endswith((".py", ".pyw")) and zipfile.is_zipfile(path):
            runpy.run_path(path, run_name="__main__")  # a directory or zip with __main__.py
        else:
            _exec_as_main(path)
    finally:
        sys.argv = saved_argv
        if saved_path0 is not None and sys.path and sys.path[0] == directory:
            sys.path[0] = saved_path0


def _exec_as_main(path: str) -> None:
    """What ``python path`` does: a fresh ``__main__`` module, the file compiled under its own name."""
    with io.open_code(path) as f:
        source = f.read()
    code = compile(source, path, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __builtins__=builtins, __loader__=SourceFileLoader("__main__", path),
                         __spec__=None, __cached__=None, __package__=None)
    saved_main = sys.modules.get("__main__")
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    finally:
        if saved_main is not None:
            sys.modules["__main__"] = saved_main


def user_traceback(tb: TracebackType | None) -> TracebackType | None:
    """Drop the leading frames that belong to watchdog or runpy."""
    start = tb
    while tb is not None and not is_user_file(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return tb if tb is not None else start


def print_uncaught(exc: BaseException) -> None:
    """Print ``exc`` as the interpreter prints an uncaught exception."""
    try:
        sys.stdout.flush()
    except Exception:
        pass
    tb = user_traceback(exc.__traceback__)
    exc.__traceback__ = tb  # 3.11's default hook prints exc.__traceback__, not its argument
    sys.excepthook(type(exc), exc, tb)


def die_by_sigint() -> None:
    """Exit as Python does after an uncaught KeyboardInterrupt: killed by SIGINT."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
    raise SystemExit(130)  # only if the signal could not be delivered

