"""The live terminal dashboard: owns the rich Live display, its refresh thread and its I/O.

What it shows is `watchdog.report.panels.DashboardRenderable` of a `RunView`; this module only
decides *whether* and *when* to draw it.

Costs on the training thread: the bus listener appends each event to a deque (events come at
boundaries: loader passes, epoch ends, findings; never per step). Everything else (folding events
into the view, sampling `run.loop.steps`/`run.loop.epoch`, rendering ≈ 5 ms a frame) happens on the
dashboard's own thread at `refresh_hz` ≤ 2. No tensor is read, so no host-device sync is added.

Modes (`display_mode()`):
- ``live``: stdout is a real terminal (`sys.stdout.isatty()`, deliberately not rich's colour
  detection: `FORCE_COLOR=1` in CI makes rich treat a log file as a terminal and redraw every tick).
- ``jupyter``: inside a notebook with ipywidgets installed; rich renders into a widget.
- ``lines``: anything else (CI, a file, a notebook without ipywidgets): no Live at all, one concise
  line per epoch on stderr.
- ``off``: a torchrun rank other than local rank 0 of node 0 (the ranks of a node share one
  terminal), unless it was asked for its lines (``rank_lines``): then ``lines``. Which rank shows the
  dashboard is the run's start metadata's (``run_start``'s ``rank.shows_dashboard``), never re-read
  from the environment here.

**One live display.** Two rich ``Live`` regions on one terminal overwrite each other, so the
dashboard gives way to any other: when one is active at its start (``sys.stdout`` is already a rich
proxy, or rich's console holds a live display), it starts in ``lines`` mode; when one starts while the
panel is up (Lightning's ``RichProgressBar`` at ``on_train_start``, a script's own ``Progress``), the
panel is taken down first, on the thread starting the other display, before that display draws
anything, and the run goes on in ``lines`` mode (one line says so). The watch is a wrapper around
``rich.live.Live.start``, put back when the panel goes.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable

from .. import _rich_import  # noqa: F401  (first: rich must not draw from `random`)
from rich.file_proxy import FileProxy

from .panels import DashboardRenderable, epoch_line
from .fold import CheckStatus, RunView

MAX_REFRESH_HZ = 2.0
# How long stop() waits for another thread that is printing an epoch line (never for its own thread).
STOP_WAIT_SECONDS = 2.0


def in_jupyter() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()  # type: ignore[attr-defined]
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _has_ipywidgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except Exception:
        return False
    return True


def rank_mode(run: Any) -> str | None:
    """For a rank that does not show the dashboard: ``off``, or ``lines`` when it was asked for its
    lines (``rank_lines``); None for the rank that shows it, and for a single-process run.

    Read from the run's start metadata (``rank``: ``RankInfo`` as logged, with ``shows_dashboard``;
    ``rank_lines``), never from the environment."""
    metadata = getattr(run, "start_metadata", None)
    metadata = metadata if isinstance(metadata, dict) else {}
    rank = metadata.get("rank")
    if not isinstance(rank, dict) or rank.get("shows_dashboard", True):
        return None
    return "lines" if metadata.get("rank_lines") else "off"


def display_mode(stdout: Any = None) -> str:
    """'live', 'jupyter' or 'lines' for the given stdout (default: the current sys.stdout)."""
    if in_jupyter():
        return "jupyter" if _has_ipywidgets() else "lines"
    stream = sys.stdout if stdout is None else stdout
    try:
        return "live" if stream is not None and stream.isatty() else "lines"
    except Exception:
        return "lines"


# Dashboards drawing now; a forked child (a DataLoader worker) detaches from them at once.
_ACTIVE: "weakref.WeakSet[Dashboard]" = weakref.WeakSet()


def _detach_after_fork() -> None:
    for dashboard in list(_ACTIVE):
        dashboard._detach_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_detach_after_fork)


class Dashboard:
    """Live dashboard for one run.

    `attach()` subscribes to the run's events and starts the display (or the line-per-epoch
    fallback); its undo, like `stop()`, is idempotent and safe from any exit path.
    """

    def __init__(self, run: Any = None, *, mode: str | None = None, console: Any = None,
                 refresh_hz: float = 1.0, line_stream: Any = None,
                 on_error: Callable[[str, BaseException], None] | None = None,
                 clock: Callable[[], float] = time.time):
        self.run = run
        self.view = RunView()
        self.mode = mode or rank_mode(run) or display_mode()
        self.refresh_hz = max(0.1, min(float(refresh_hz), MAX_REFRESH_HZ))
        self._console = console
        self._line_stream = line_stream
        self._on_error = on_error
        self._clock = clock
        self._queue: deque = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = None
        self._swapped_handlers: list[tuple[logging.StreamHandler, Any, Any]] = []
        self._real_streams: tuple[Any, Any] | None = None  # sys.stdout/stderr before the Live took them
        self._started = False
        self._stopped = False
        self._failed = False
        self._pending_epoch_line = False
        self._pending_source: Any = None
        self._lines_lock = threading.Lock()
        self._lines_owner: int | None = None  # the thread folding events in lines mode
        self._deferred_errors: deque = deque()  # reported once no display lock is held
        self._unwatch_lives: Callable[[], None] | None = None  # puts rich's Live.start back
        self.gave_way = False  # another live display started: lines mode since
        self.frames = 0
        self.render_seconds = 0.0
        self._pid = os.getpid()
        self._totals: dict[str, int | None] = {}
        self.loss_ref: list[Any] = [None]  # a weakref to the last backward()'s tensor (the probe's)
        if run is not None:
            self._seed_from_run(run)

    @classmethod
    def for_run(cls, run: Any, **kwargs: Any) -> "Dashboard | None":
        """The dashboard a run asked for (`dashboard=False` / `--no-dashboard`: none)."""
        if getattr(getattr(run, "options", None), "dashboard", None) is False:
            return None
        dashboard = cls(run, **kwargs)
        return None if dashboard.mode == "off" else dashboard

    def attach(self) -> Callable[[], None]:
        """Subscribe to the run's events and start; returns the idempotent undo."""
        remove = self.run.bus.add_listener(self.on_event)
        try:
            self.start()
        except BaseException:
            remove()
            raise

        def undo() -> None:
            self._stop.set()  # the refresh thread ends even when stop() itself fails
            try:
                self.stop()
            finally:
                try:
                    self._release_terminal()
                finally:
                    remove()
                    thread = self._thread
                    if thread is not None and thread is not threading.current_thread():
                        thread.join(timeout=STOP_WAIT_SECONDS)

        return undo

    def _seed_from_run(self, run: Any) -> None:
        """What the run_start event said (it is emitted before the dashboard subscribes)."""
        data = getattr(run, "start_metadata", None)  # a Run; tests drive the dashboard with bare counters
        if isinstance(data, dict) and data:
            self.view.apply({"kind": "run_start", "t": getattr(run, "started_at", None), "data": data})

    # ------------------------------------------------------------------ event intake
    def on_event(self, event: Any) -> None:
        """Bus listener, called on the emitting thread: O(1), never raises, never blocks."""
        if self._stopped or self._failed or os.getpid() != self._pid:  # forked worker: not ours
            return
        try:
            self._queue.append(event)
            if self.mode == "lines":
                self._fold_lines()
        except Exception as exc:  # pragma: no cover - defensive
            self._failed = True
            self._deferred_errors.append(exc)
        self._report_deferred_errors()

    def _fold_lines(self) -> None:
        """Lines mode: fold queued events (printing epoch lines), one thread at a time.

        Events may come from several threads (the memory sampler). A thread that finds another
        one folding leaves its event queued for it instead of waiting: the bus never blocks on
        the display, whatever the display's stream does.
        """
        while self._queue and not self._failed:
            if not self._lines_lock.acquire(blocking=False):
                return  # the thread folding now picks our event up before it releases
            self._lines_owner = threading.get_ident()
            try:
                while self._queue and not self._failed:
                    self._lines_event(self._queue.popleft())
            finally:
                self._lines_owner = None
                self._lines_lock.release()

    def _report_deferred_errors(self) -> None:
        """Report display failures, outside any display lock (the report re-enters `on_event`)."""
        while self._deferred_errors:
            try:
                exc = self._deferred_errors.popleft()
            except IndexError:
                return
            self._error(exc)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Dashboard":
        if self._started:
            return self
        self._started = True
        if self.mode == "live" and another_live_display():
            self.mode = "lines"  # a script's own rich display is up: never draw a second one
            self.gave_way = True
        if self.mode == "lines":
            return self
        try:
            from rich.console import Console
            from rich.live import Live

            if self._console is None:
                # The user's output passes through this console: never read it as markup or
                # emoji codes, never recolour it.
                plain = dict(markup=False, highlight=False, emoji=False)
                if self.mode == "jupyter":
                    self._console = Console(force_jupyter=True, **plain)
                else:
                    # An explicit file: rich's proxies (installed by Live) print through the console.
                    self._console = Console(file=sys.stdout, force_terminal=True, **plain)
            self._live = Live(self._frame(), console=self._console, auto_refresh=False,
                              redirect_stdout=True, redirect_stderr=True, transient=False)
            old_out, old_err = sys.stdout, sys.stderr
            self._real_streams = (old_out, old_err)
            self._live.start(refresh=True)
            self._unwatch_lives = self._watch_other_lives(Live)
            self._install_line_proxies()
            self._swap_logging_streams(old_out, old_err)
            _ACTIVE.add(self)
            self._thread = threading.Thread(target=self._loop, name="watchdog-dashboard", daemon=True)
            self._thread.start()
        except Exception as exc:
            self._error(exc)
            self._teardown_live()
            self._drain()
            self.mode = "lines"  # what the Live could not show, the per-epoch lines will
        return self

    def _watch_other_lives(self, live_class: Any) -> Callable[[], None]:
        """Wrap ``live_class.start`` so that another live display starting takes the panel down first;
        returns the undo (idempotent; it leaves alone a wrapper someone put over ours)."""
        original = live_class.start
        dashboard = weakref.ref(self)

        @functools.wraps(original)
        def start(live: Any, *args: Any, **kwargs: Any) -> Any:
            ours = dashboard()
            if ours is not None and live is not ours._live and ours._live is not None and os.getpid() == ours._pid:
                ours.give_way()
            return original(live, *args, **kwargs)

        live_class.start = start

        def undo() -> None:
            if live_class.__dict__.get("start") is start:
                live_class.start = original

        return undo

    def give_way(self) -> None:
        """Another live display starts: take the panel down (thread, Live, streams, logging) and go on
        with one line per epoch. Never raises; the other display starts whatever happens here."""
        if self._live is None or self._stopped:
            return
        try:
            self._stop.set()
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=STOP_WAIT_SECONDS)
            self._teardown_live()
            self.gave_way = True
            self.mode = "lines"
            stream = self._line_target()
            if stream is None:
                self._fold_lines()
                return
            stream.write("[watchdog] another live display started (a progress bar): watchdog's dashboard "
                         "steps aside and prints one line per epoch\n")
            stream.flush()
            self._fold_lines()
        except Exception as exc:
            self._failed = True
            self._error(exc)

    def stop(self) -> None:
        """Stop the thread, draw the final frame and restore stdout/stderr and logging."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5.0)
        if self.mode == "lines":
            self._finish_lines()
            return
        try:
            self._drain()
            self._sample_run()
            status = getattr(self.run, "status", None)
            if isinstance(status, str) and status not in ("created", "running"):
                self.view.status = status  # the run is stopping: ok / exception / interrupted / ...
                self.view.phase = "done"
                self.view.current_batches = None
            if self._live is not None and not self._failed:
                self._live.update(self._frame(), refresh=True)
        except Exception as exc:
            self._error(exc)
        finally:
            self._teardown_live()

    def _finish_lines(self) -> None:
        """Print the last epoch's line, unless that means waiting on the display.

        stop() may run inside a SIGTERM handler that interrupted this very thread while it was
        printing (the lock is ours: waiting would never end), or while another thread is stuck
        writing to a blocked stream: the line is then dropped, the report is what matters.
        """
        if self._lines_owner == threading.get_ident():
            return
        if not self._lines_lock.acquire(timeout=STOP_WAIT_SECONDS):
            return
        self._lines_owner = threading.get_ident()
        try:
            while self._queue and not self._failed:
                self._lines_event(self._queue.popleft())
            if self._pending_epoch_line and not self._failed:
                self._print_epoch_line()
        except Exception as exc:
            self._failed = True
            self._deferred_errors.append(exc)
        finally:
            self._lines_owner = None
            self._lines_lock.release()
        self._report_deferred_errors()

    def __enter__(self) -> "Dashboard":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ the refresh thread
    def _loop(self) -> None:
        period = 1.0 / self.refresh_hz
        while not self._stop.wait(period) and not self._failed:
            try:
                self.tick()
            except Exception as exc:
                self._failed = True
                self._error(exc)
                return

    def tick(self) -> None:
        """One refresh: fold queued events, sample the run's counters, redraw."""
        self._drain()
        self._sample_run()
        if self._live is not None:
            t0 = time.perf_counter()
            self._live.update(self._frame(), refresh=True)
            self.render_seconds += time.perf_counter() - t0
            self.frames += 1

    def _frame(self) -> "FrozenFrame":
        """Render the dashboard here, on this thread, into plain segments.

        rich redraws the live region whenever the user prints (on the printing thread): what it
        redraws must then cost a copy of segments, not a layout of tables.
        """
        console = self._console
        renderable: Any = DashboardRenderable(self.view)
        pending = [p.pending for p in (sys.stdout, sys.stderr) if isinstance(p, LineProxy) and p.pending]
        if pending:
            from rich.console import Group
            from rich.text import Text

            renderable = Group(renderable, *(Text.from_ansi(line, no_wrap=True, overflow="ellipsis")
                                             for line in pending))
        lines = console.render_lines(renderable, console.options, pad=False)
        return FrozenFrame(lines)

    def _install_line_proxies(self) -> None:
        """Replace rich's stdout/stderr proxies by ones that hold a `\r`-redrawn line (tqdm)."""
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if type(current) is FileProxy:
                proxy = LineProxy(self._console, current.rich_proxied_file)
                proxy.on_error = self._drawing_failed
                setattr(sys, name, proxy)

    def _drawing_failed(self, exc: BaseException) -> None:
        """Redrawing on a print() failed (the line proxy passes through now): stop drawing."""
        self._failed = True
        self._error(exc)

    def _drain(self) -> None:
        q = self._queue
        while q:
            self.view.apply(q.popleft())

    def _sample_run(self) -> None:
        """Read the run's counters and its innermost open DataLoader pass (plain ints, no tensors)."""
        run = self.run
        if run is None:
            return
        loop = run.loop
        steps, epoch = loop.steps, loop.epoch
        v = self.view
        v.sample(self._clock(), steps if isinstance(steps, int) else None,
                 epoch if isinstance(epoch, int) else None)
        self._sample_loss()
        passes = loop.all_open_passes()
        record = passes[-1] if passes else None
        if record is None or v.phase == "done":
            v.current_batches = None
            v.current_total = None
            return
        info = getattr(record, "loader", None)
        label = getattr(info, "label", None)
        if isinstance(label, str):
            v.current_loader = label
        role = record.role(final=False)  # the probe's own rule, as far as the pass has gone
        if role != "unknown":
            v.phase = role
        consumed = getattr(record, "consumed", None)
        v.current_batches = consumed if isinstance(consumed, int) else None
        v.current_total = self._total_batches(info)

    def _sample_loss(self) -> None:
        """The last loss backward() started from: read only if it is a one-element CPU tensor.

        A loss on an accelerator is never read (that would wait for the device); the dashboard
        says where it is instead.
        """
        ref = self.loss_ref[0]
        tensor = ref() if ref is not None else None
        torch = sys.modules.get("torch")
        if tensor is None or torch is None or not isinstance(tensor, torch.Tensor) or tensor.numel() != 1:
            return
        v = self.view
        if tensor.device.type == "cpu":
            v.loss, v.loss_note = float(tensor.detach()), None
        else:
            v.loss, v.loss_note = None, f"on {tensor.device.type}: not read, no sync"

    def _total_batches(self, info: Any) -> int | None:
        """len(loader), once per loader (map-style only: an IterableDataset may not know it)."""
        key = getattr(info, "loader_id", None)
        if key is None:
            return None
        if key not in self._totals:
            total = None
            ref = getattr(info, "ref", None)
            loader = ref() if callable(ref) else None
            if loader is not None and not getattr(info, "iterable", True):
                try:
                    total = len(loader)
                except Exception:
                    total = None
            self._totals[key] = total
        return self._totals[key]

    # ------------------------------------------------------------------ the fallback
    def _lines_event(self, event: Any) -> None:
        """Fold the event; print the epoch's line once what belongs to the epoch has arrived.

        An epoch closed by a training pass is usually followed by its evaluation pass, so its line
        waits for the next training pass (or the next epoch end, or the run's end). So does an epoch
        marked in a loop that trains over a DataLoader (the Hugging Face Trainer marks its epoch
        before it evaluates). An epoch marked with `watchdog.mark_epoch()` in a loop without a
        training DataLoader prints as soon as its memory sample is in.
        """
        if isinstance(event, dict):
            kind, data = event.get("kind"), event.get("data")
        else:
            kind, data = getattr(event, "kind", None), getattr(event, "data", None)
        data = data if isinstance(data, dict) else {}
        if self._pending_epoch_line and kind in ("epoch_end", "run_end"):
            self._print_epoch_line()
        self.view.apply(event)
        if kind == "epoch_end":
            self._pending_epoch_line = True
            self._pending_source = data.get("source")
        elif not self._pending_epoch_line:
            return
        elif kind == "loader_pass_start" and self.view.phase == "train":
            self._print_epoch_line()  # the next training pass begins: the epoch is complete
        elif (kind == "memory_sample" and data.get("at") == "epoch_end" and self._pending_source == "mark"
              and not any(p.role == "train" for p in self.view.passes)):
            self._print_epoch_line()

    def _line_target(self) -> Any:
        """Where the lines go: the given stream, else stderr; None when the program has no stderr
        (started with it closed, `2>&-`, or set to None): as `print()` to a None stdout, nothing is
        printed and nothing failed."""
        return self._line_stream if self._line_stream is not None else sys.stderr

    def _print_epoch_line(self) -> None:
        self._pending_epoch_line = False
        stream = self._line_target()
        if stream is None:
            return
        try:
            stream.write(epoch_line(self.view) + "\n")
            stream.flush()
        except Exception as exc:
            # A stream that cannot take a line (closed, None, a full disk) will not take the next:
            # the display switches itself off; the error is reported once the lock is released.
            self._failed = True
            self._deferred_errors.append(exc)

    # ------------------------------------------------------------------ logging streams
    def _swap_logging_streams(self, old_out: Any, old_err: Any) -> None:
        """Point StreamHandlers that write to the real stdout/stderr at Live's proxies."""
        new_out, new_err = sys.stdout, sys.stderr
        targets = {id(old_out): new_out, id(old_err): new_err}
        for handler in _all_stream_handlers():
            stream = getattr(handler, "stream", None)
            new = targets.get(id(stream))
            if new is not None and new is not stream:
                try:
                    handler.setStream(new)
                    self._swapped_handlers.append((handler, stream, new))
                except Exception as exc:  # pragma: no cover - defensive
                    self._error(exc)

    def _restore_logging_streams(self) -> None:
        while self._swapped_handlers:
            handler, old, new = self._swapped_handlers.pop()
            try:
                if handler.stream is new:
                    handler.setStream(old)
            except Exception as exc:  # pragma: no cover - defensive
                self._error(exc)

    def _detach_in_child(self) -> None:
        """In a forked child: write straight to the real stdout/stderr again.

        The parent's dashboard thread does not exist here, and a console lock it held at the fork
        would stay held for ever: a worker printing (or warning) through the proxies would hang.
        """
        self._stopped = True
        self._live = None
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if isinstance(current, FileProxy):
                setattr(sys, name, current.rich_proxied_file)
        for handler, old, new in self._swapped_handlers:
            if getattr(handler, "stream", None) is new:
                handler.stream = old
        self._swapped_handlers = []

    def _release_terminal(self) -> None:
        """Last resort after `stop()`: whatever it could not undo (it failed half-way), undo here.

        Stops the Live display and puts back the streams and logging handlers it took; a no-op
        when `stop()` finished.
        """
        self._stopped = True
        self._stop.set()
        _ACTIVE.discard(self)
        self._stop_watching_lives()
        live, self._live = self._live, None
        if live is not None:
            try:
                live.stop()
            except Exception:
                pass
        for name, original in zip(("stdout", "stderr"), self._real_streams or ()):
            if isinstance(getattr(sys, name), FileProxy):
                setattr(sys, name, original)
        while self._swapped_handlers:
            handler, old, new = self._swapped_handlers.pop()
            if getattr(handler, "stream", None) is new:
                handler.stream = old

    def _teardown_live(self) -> None:
        # Restore handlers first: once Live stops, its proxies are gone.
        _ACTIVE.discard(self)
        self._stop_watching_lives()
        self._restore_logging_streams()
        live, self._live = self._live, None
        if live is not None:
            try:
                live.stop()
            except Exception as exc:
                self._error(exc)

    def _stop_watching_lives(self) -> None:
        undo, self._unwatch_lives = self._unwatch_lives, None
        if undo is not None:
            try:
                undo()
            except Exception as exc:  # pragma: no cover - defensive
                self._error(exc)

    def _error(self, exc: BaseException) -> None:
        try:
            if self._on_error is not None:
                self._on_error("dashboard", exc)
            elif self.run is not None and hasattr(self.run, "internal_error"):
                self.run.internal_error("dashboard", exc)
        except Exception:
            pass


def another_live_display() -> bool:
    """Whether a rich live display is up already: ``sys.stdout`` is a rich proxy (a ``Live`` with its
    default redirection), or rich's global console holds one."""
    if isinstance(sys.stdout, FileProxy) or isinstance(sys.stderr, FileProxy):
        return True
    try:
        from rich import get_console

        console = get_console()
    except Exception:
        return False
    return bool(getattr(console, "_live_stack", None) or getattr(console, "_live", None))


class LineProxy(FileProxy):
    """rich's FileProxy, except for a line that redraws itself with `\r` (a tqdm bar).

    rich prints whatever is buffered at each flush() as a new line above the live display, so a
    progress bar would print one line per update. Here the latest state of such a line is kept as
    `pending` (drawn under the dashboard) and printed once, when its newline comes.

    Each print redraws the dashboard on the printing (the user's) thread: if that fails, the
    proxy says so (``on_error``) and from then on writes straight to the real file, so the user's
    text is never lost and the user's ``print()`` never sees watchdog's error.
    """

    pending = ""
    broken = False  # drawing failed: a plain pass-through to the real file
    on_error: Any = None

    def write(self, text: str) -> int:
        if self.broken:
            return self.rich_proxied_file.write(text)
        if not isinstance(text, str):
            return super().write(text)  # the caller's TypeError, as from any text file
        buffer = self._FileProxy__buffer  # type: ignore[attr-defined]
        held = "".join(buffer)
        try:
            n = self._print_lines(text)
        except Exception as exc:
            buffer.clear()
            self._drawing_failed(exc)
            return self.rich_proxied_file.write(held + text)
        if "\n" in text:
            self.pending = ""
        return n

    def flush(self) -> None:
        if self.broken:
            return self.rich_proxied_file.flush()
        buffer = self._FileProxy__buffer  # type: ignore[attr-defined]
        partial = "".join(buffer)
        if "\r" in partial:
            self.pending = partial.rsplit("\r", 1)[-1]
            buffer[:] = ["\r" + self.pending]
            return None
        try:
            if partial:
                self._FileProxy__console.print(partial, soft_wrap=True)  # type: ignore[attr-defined]
            buffer.clear()
        except Exception as exc:
            buffer.clear()
            self._drawing_failed(exc)
            self.rich_proxied_file.write(partial)
            self.rich_proxied_file.flush()
        return None

    def _print_lines(self, text: str) -> int:
        """rich's FileProxy.write, printing each complete line as written: ``soft_wrap`` leaves the
        wrapping to the terminal, so a long URL or JSON line copies out whole."""
        from rich.text import Text

        buffer = self._FileProxy__buffer  # type: ignore[attr-defined]
        lines: list[str] = []
        rest = text
        while rest:
            line, newline, rest = rest.partition("\n")
            if newline:
                lines.append("".join(buffer) + line)
                buffer.clear()
            else:
                buffer.append(line)
                break
        if lines:
            console = self._FileProxy__console  # type: ignore[attr-defined]
            decoder = self._FileProxy__ansi_decoder  # type: ignore[attr-defined]
            with console:
                console.print(Text("\n").join(decoder.decode_line(line) for line in lines), soft_wrap=True)
        return len(text)

    def _drawing_failed(self, exc: BaseException) -> None:
        self.broken = True
        self.pending = ""
        try:
            if self.on_error is not None:
                self.on_error(exc)
        except Exception:
            pass


class FrozenFrame:
    """A dashboard frame already rendered to lines of segments: cheap to draw again."""

    __slots__ = ("lines",)

    def __init__(self, lines: list) -> None:
        self.lines = lines

    def __rich_console__(self, console: Any, options: Any):
        from rich.segment import Segment

        new_line = Segment.line()
        for line in self.lines:
            yield from line
            yield new_line


def _all_stream_handlers() -> list[logging.StreamHandler]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    for obj in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(obj, logging.Logger):
            loggers.append(obj)
    seen: set[int] = set()
    out = []
    for lg in loggers:
        for h in list(lg.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) and id(h) not in seen:
                seen.add(id(h))
                out.append(h)
    return out
