"""The ``watchdog`` command: ``watchdog run [options] script.py [args...]`` (or ``-m module [args...]``)
and ``watchdog report DIR``.

Exit status of ``watchdog run``: the script's own (0, its ``sys.exit`` code, 1 for an uncaught
exception, death by SIGINT for Ctrl-C), except that a run whose findings reach ``--fail-on`` exits
with ``EXIT_FINDINGS`` (86) when the script itself succeeded or was stopped by watchdog.
``EXIT_USAGE`` (2) means a usage error (bad options, a script that cannot be opened); a script with a
syntax error exits with status 1 and Python's own message. Either writes and archives nothing: the
script is found and compiled before the run starts. When watching cannot start
(an unusable report directory), the script runs unwatched with one line on stderr saying why.
"""

from __future__ import annotations

import argparse
import sys

from . import _import_name

EXIT_FINDINGS = 86
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    from ._version import __version__
    from .core.run import DEFAULT_REPORT_DIR, FAIL_ON_CHOICES

    parser = argparse.ArgumentParser(
        prog="watchdog",
        description="A runtime watchdog for PyTorch training loops.",
    )
    parser.add_argument("--version", action="version", version=f"torch-watchdog {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run a training script under watchdog, exactly as `python script.py args...` would",
        description="Run a training script (or, with -m, a module) as __main__ under watchdog, as python "
                    "would. Everything after the script (or the module's name) is passed to it unchanged.",
        usage="watchdog run [options] script.py [args...]\n       watchdog run [options] -m module [args...]",
    )
    run.add_argument("-m", dest="module", metavar="MODULE", default=None,
                     help="run a module as `python -m MODULE args...` would (the rest of the line is its arguments)")
    run.add_argument("--report-dir", metavar="DIR", default=None,
                     help=f"where report.json and events.jsonl go (default: ./{DEFAULT_REPORT_DIR}, "
                          "or $WATCHDOG_REPORT_DIR); an earlier report there is moved to DIR/previous/")
    run.add_argument("--fail-on", choices=FAIL_ON_CHOICES, default="never",
                     help="stop at the first finding of this severity (at the end of that DataLoader pass) "
                          f"and exit with status {EXIT_FINDINGS}; 'never' (default) only reports")
    run.add_argument("--no-dashboard", action="store_true", help="no live terminal dashboard")
    run.add_argument("--eval-every", type=int, default=1, metavar="N",
                     help="expected evaluation cadence in epochs (default 1)")
    run.add_argument("--fingerprint", action="store_true",
                     help="hash sample contents to catch duplicates across dataset objects (costs time per batch)")
    run.add_argument("--checkpoint-verify", choices=("first", "every", "off"), default="first",
                     help="read checkpoints back and compare them with the live state (default: the first save)")
    run.add_argument("--quiet", action="store_true", help="no summary table at the end")
    run.add_argument("--rank-lines", action="store_true", default=None,
                     help="under torchrun: every rank prints its epoch lines and its own summary, not only "
                          "local rank 0 of node 0 (default: $WATCHDOG_RANK_LINES); the merged summary is "
                          "printed once either way")
    run.add_argument("script", nargs="?", help="the Python script to run (a file, or a directory or zip with "
                                               "__main__.py)")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")

    report = sub.add_parser("report", help="re-render the summary (and HTML) of a finished or crashed run")
    report.add_argument("dir", metavar="DIR", help="a report directory (holding events.jsonl); a torchrun "
                                                   "job's DIR (holding rank<N>/ folders): its ranks merged")
    return parser


def main(argv: list[str] | None = None) -> int:
    package = sys.modules.get(__package__ or "watchdog")
    if package is None or not _import_name.package_is_ours(package):
        print(_import_name.MIXED_INSTALL_MESSAGE, file=sys.stderr)
        return EXIT_USAGE
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    module, module_args = None, []
    if argv[:1] == ["run"]:
        options, module, module_args = split_module_args(argv[1:], _subparser(parser, "run"))
        argv = ["run", *options]
    ns = parser.parse_args(argv)
    if ns.command == "run":
        if module is not None:
            ns.module, ns.args = module, module_args
        elif ns.script is None:
            _subparser(parser, "run").error("give the script to run (watchdog run train.py [args...]) "
                                            "or a module (watchdog run -m package.module [args...])")
        return _run(ns)
    if ns.command == "report":
        return _report(ns)
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


def split_module_args(argv: list[str], run_parser: argparse.ArgumentParser) -> tuple[list[str], str | None, list[str]]:
    """``[options] -m MODULE args...`` -> ``(options, MODULE, args)``, as ``python -m`` reads its line.

    Everything after the module's name is the module's, even what looks like a watchdog option; a
    ``-m`` after the script is the script's own argument. Without ``-m``: ``(argv, None, [])``.
    """
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "-m":
            if i + 1 == len(argv):
                break  # argparse says "-m: expected one argument"
            return argv[:i], argv[i + 1], argv[i + 2:]
        if token.startswith("-m") and not token.startswith("--"):
            return argv[:i], token[2:], argv[i + 1:]
        if token == "--" or not token.startswith("-") or token == "-":
            break  # the script: what follows is its own
        name = token.split("=", 1)[0]
        matches = [option for option in run_parser._option_string_actions if option == name] or [
            option for option in run_parser._option_string_actions if name.startswith("--") and option.startswith(name)]
        action = run_parser._option_string_actions[matches[0]] if len(matches) == 1 else None
        if action is not None and action.nargs != 0 and "=" not in token:
            i += 1  # the option's value
        i += 1
    return argv, None, []


def _run(ns: argparse.Namespace) -> int:
    from . import runner
    from .core.findings import WatchdogStop
    from .core.run import WatchdogUsageError, watch

    if ns.eval_every < 1:
        print(f"watchdog run: --eval-every {ns.eval_every}: expected a whole number >= 1", file=sys.stderr)
        return EXIT_USAGE
    try:  # found and compiled before the run starts: a refused start writes and archives nothing
        if ns.module is not None:
            program = runner.prepare_module(ns.module, list(ns.args))
        else:
            program = runner.prepare_script(ns.script, list(ns.args))
    except runner.StartRefused as refused:
        if refused.error is not None:
            runner.print_uncaught(refused.error)  # a syntax error, printed as Python prints it
        else:
            print(f"watchdog run: {refused.message}", file=sys.stderr)
        return refused.status
    options = dict(
        report_dir=ns.report_dir,
        dashboard=False if ns.no_dashboard else None,
        strict=ns.fail_on if ns.fail_on != "never" else False,
        fail_on=ns.fail_on,
        eval_every=ns.eval_every,
        fingerprint=ns.fingerprint,
        checkpoint_verify=ns.checkpoint_verify,
        summary=not ns.quiet,
        rank_lines=ns.rank_lines,
    )
    saved_argv = sys.argv
    sys.argv = list(program.argv)  # what the report records, as the script will see it
    try:
        session = watch(**options)
        run = session.__enter__()
    except WatchdogUsageError as exc:
        print(f"watchdog run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        sys.argv = saved_argv
    error: BaseException | None = None
    try:
        runner.run_program(program)
    except BaseException as exc:  # noqa: BLE001 - we re-create Python's own handling below
        error = exc
    if error is not None and not isinstance(error, (SystemExit, WatchdogStop)):
        runner.print_uncaught(error)  # the user's traceback first, as Python prints it
    session.__exit__(type(error) if error else None, error, error.__traceback__ if error else None)
    # The summary (off with --quiet) ends with this line; a rank of a torchrun job says it only when
    # asked (rank_lines): the rank that merges says where the merged report is.
    if ns.quiet and run.status != "unwatched" and (run.rank_info is None or run.rank_lines):
        from .core.format import report_written_line

        print(report_written_line(run.report_dir, len(run.findings)), file=sys.stderr)

    if isinstance(error, WatchdogStop):
        print(f"watchdog: {error}", file=sys.stderr)
        return EXIT_FINDINGS
    if isinstance(error, KeyboardInterrupt):
        runner.die_by_sigint()
    if isinstance(error, SystemExit):
        if error.code in (None, 0) and run.fails():
            return _findings_exit(run)
        raise error  # Python's own handling of the script's exit code and message
    if error is not None:
        return 1
    if run.fails():
        return _findings_exit(run)
    return 0


def _findings_exit(run: object) -> int:
    threshold = run.options.fail_on  # type: ignore[attr-defined]
    count = len(run.findings_at_least(threshold))  # type: ignore[attr-defined]
    print(f"watchdog: {count} finding(s) at or above '{threshold}': exiting with status {EXIT_FINDINGS}",
          file=sys.stderr)
    return EXIT_FINDINGS


def _report(ns: argparse.Namespace) -> int:
    from .distributed.finish import holds_ranks, report_command
    from .report.rerender import render_report

    if holds_ranks(ns.dir):  # a torchrun job's DIR: its rank folders merged (DIR/rank<N> re-renders one)
        return report_command(ns.dir)
    return render_report(ns.dir)


if __name__ == "__main__":
    sys.exit(main())
