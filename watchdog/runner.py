"""Run a script as ``__main__`` exactly as ``python script.py args...`` would (or a module, as
``python -m module args...`` would).

``sys.argv`` is ``[script, *args]`` (the path as given), ``sys.path[0]`` the script's directory (links
resolved), ``__file__`` its path joined to the working directory, ``__name__ == "__main__"`` (so
DataLoader workers started with ``spawn`` re-import it as Python does). An uncaught exception is
printed through ``sys.excepthook`` with watchdog's and runpy's frames trimmed off, as Python would
print it. A directory or zip file runs its ``__main__.py`` (``sys.path[0]`` is then the directory or
zip itself). A module (``-m pkg.module``) runs with ``sys.argv[0]`` its file's path, ``sys.path[0]``
the working directory, and ``__spec__`` its spec (its parent packages are imported while it is
looked up, before the run starts, as Python imports them before running it).

Running is two steps: ``prepare_script`` (or ``prepare_module``) finds and compiles the program before any run starts (a
missing file or a syntax error is refused as Python refuses it, and nothing is written or archived),
then ``run_program`` executes it.
"""

from __future__ import annotations

import builtins
import io
import os
import pkgutil
import runpy
import signal
import sys
import types
from dataclasses import dataclass, field
from importlib.machinery import SourceFileLoader
from types import CodeType, TracebackType
from typing import Any


class StartRefused(Exception):
    """Python itself would not start this program: it prints ``message`` (or ``error`` as an uncaught
    exception, for a syntax error) and exits with ``status``."""

    def __init__(self, status: int, message: str | None = None, error: BaseException | None = None):
        super().__init__(message or str(error))
        self.status = status
        self.message = message
        self.error = error


@dataclass
class MainProgram:
    """A program found and compiled, ready to run as ``__main__``."""

    argv: list[str]  # sys.argv as the program sees it
    path0: str  # sys.path[0] while it runs
    code: CodeType
    main_attrs: dict[str, Any] = field(default_factory=dict)  # the fresh __main__ module's attributes


def _python_abspath(path: str) -> str:
    """The path joined to the working directory, unnormalised, as Python makes a script's ``__file__``."""
    return path if os.path.isabs(path) else os.path.join(os.getcwd(), path)


def _refused_syntax(exc: BaseException) -> StartRefused:
    exc.__traceback__ = None  # Python prints a syntax error in the program it starts without frames
    return StartRefused(1, error=exc)


def prepare_script(script: str, args: list[str]) -> MainProgram:
    """What ``python script args...`` would run; raises ``StartRefused`` where Python refuses to start."""
    path = _python_abspath(script)
    importer = pkgutil.get_importer(path)  # a directory or a zip file: its __main__ runs, as with python
    if importer is not None:
        return _prepare_main_of(importer, path, [script, *args])
    try:
        with io.open_code(path) as f:
            source = f.read()
    except OSError as exc:
        raise StartRefused(2, f"can't open file {path!r}: [Errno {exc.errno}] {exc.strerror}") from None
    try:
        code = compile(source, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:  # ValueError: null bytes in the source (Python < 3.12)
        raise _refused_syntax(exc) from None
    attrs = dict(__file__=path, __loader__=SourceFileLoader("__main__", path), __spec__=None, __cached__=None,
                 __package__=None)
    return MainProgram(argv=[script, *args], path0=os.path.dirname(os.path.realpath(path)), code=code,
                       main_attrs=attrs)


def _prepare_main_of(importer: Any, path: str, argv: list[str]) -> MainProgram:
    """A directory's or zip file's ``__main__`` module, as ``python DIR`` finds it."""
    try:
        spec = importer.find_spec("__main__")
    except Exception:
        spec = None
    if spec is None or spec.loader is None:
        raise StartRefused(1, f"can't find '__main__' module in {path!r}")
    try:
        code = spec.loader.get_code("__main__")
    except (SyntaxError, ValueError) as exc:
        raise _refused_syntax(exc) from None
    except OSError as exc:
        raise StartRefused(1, f"can't read '__main__' module in {path!r}: {exc.strerror or exc}") from None
    if code is None:
        raise StartRefused(1, f"can't find '__main__' module in {path!r}")
    attrs = dict(__file__=spec.origin, __cached__=spec.cached, __loader__=spec.loader, __package__="",
                 __spec__=spec)
    return MainProgram(argv=argv, path0=path, code=code, main_attrs=attrs)


class _ModuleNotRunnable(Exception):
    """runpy's lookup error, with Python's own message (no module, a package without __main__...)."""


def prepare_module(module: str, args: list[str]) -> MainProgram:
    """What ``python -m module args...`` would run; raises ``StartRefused`` where Python refuses to start."""
    path0 = os.getcwd()
    saved_path0 = sys.path[0] if sys.path else None
    if sys.path:
        sys.path[0] = path0
    else:
        sys.path.insert(0, path0)
    try:
        # The lookup `python -m` itself makes (pdb uses it too): parent packages imported, a package's
        # __main__ found, the code compiled; its errors carry Python's own messages.
        _, spec, code = runpy._get_module_details(module, _ModuleNotRunnable)  # type: ignore[attr-defined]
    except _ModuleNotRunnable as exc:
        raise StartRefused(1, str(exc)) from None
    except (SyntaxError, ValueError) as exc:
        raise _refused_syntax(exc) from None
    except Exception as exc:  # a parent package's __init__ raised: printed as Python prints it
        raise StartRefused(1, error=exc) from None
    finally:
        if saved_path0 is not None and sys.path and sys.path[0] == path0:
            sys.path[0] = saved_path0
    attrs = dict(__file__=spec.origin, __cached__=spec.cached, __loader__=spec.loader, __package__=spec.parent,
                 __spec__=spec)
    return MainProgram(argv=[spec.origin, *args], path0=path0, code=code, main_attrs=attrs)


def run_program(program: MainProgram) -> None:
    """Execute ``program`` as ``__main__``; exceptions (``SystemExit`` included) propagate to the caller."""
    saved_argv, saved_path0 = sys.argv, sys.path[0] if sys.path else None
    sys.argv = list(program.argv)
    if sys.path:
        sys.path[0] = program.path0
    else:
        sys.path.insert(0, program.path0)
    try:
        _exec_as_main(program.code, program.main_attrs)
    finally:
        sys.argv = saved_argv
        if saved_path0 is not None and sys.path and sys.path[0] == program.path0:
            sys.path[0] = saved_path0


def _exec_as_main(code: CodeType, attrs: dict[str, Any]) -> None:
    """What Python does with its main program: a fresh ``__main__`` module, the code run in it."""
    main = types.ModuleType("__main__")
    main.__dict__.update(attrs, __builtins__=builtins)
    saved_main = sys.modules.get("__main__")
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    finally:
        if saved_main is not None:
            sys.modules["__main__"] = saved_main


def user_traceback(tb: TracebackType | None) -> TracebackType | None:
    """Drop the leading frames that belong to watchdog or runpy."""
    if tb is None:
        return None
    from .core.frames import is_user_file  # imports torch: only once the program ran

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
