"""Memory check: memory that grows epoch after epoch, caught early, with the culprit named.

It reads the ``memory_sample`` events of the memory probe and reports:

- ``memory/tensor-growth``: the live tensors (count, or bytes) grow by a steady amount every
  epoch. The census diff is walked back to the holders of the new tensors: the container, its
  name in the user's frame or object, the line that grows it, how many tensors and bytes, and
  whether they keep autograd graphs alive (and roughly what those graphs hold). The fix follows
  from what is held (``loss.item()``, ``.detach()``, ``torch.no_grad()``, a bounded cache).
- ``memory/cuda-growth``: a device's allocated memory (caching allocator) grows steadily; the rate
  and the epoch where the device runs out.
- ``memory/rss-growth``: process RSS grows steadily while live tensors do not (memory held outside
  tensors). On a CPU, RSS alone is too noisy to judge (glibc keeps freed memory), so the census
  comes first and RSS only corroborates.
- ``memory/fragmentation``: the caching allocator's reserved-but-unallocated memory or its inactive
  split blocks grow, or allocations needed retries: advice is ``expandable_segments``, not
  ``empty_cache()`` in the loop.
- ``memory/growth-within-epoch``: in a long epoch, a steady rise of the memory floor across step
  windows, reported before the epoch ends (early warning).

Growth findings are warnings; an error when the projection says the machine's RAM or the device
runs out within ``PROJECT_EPOCHS`` epochs. The growth rule and its thresholds are in
:mod:`watchdog.memory.growth` (documented in the README).
"""

from __future__ import annotations

from typing import Any

from ..core.findings import Finding
from ..core.format import fmt_bytes, fmt_int
from ..core.frames import release_locals_snapshots, stack_frames
from .growth import (
    MB,
    EpochSample,
    EpochSeries,
    Growth,
    Verdict,
    window_growth,
)
from .sources import CudaMemory, machine_ram_bytes
from ..core.check import Check

PROJECT_EPOCHS = 100  # growth is projected this far when the run's length is unknown (see run_length)
MAX_PROJECTED_EPOCHS = 100_000  # beyond this, "runs out near epoch N" says nothing useful
CULPRIT_EVERY = 10  # re-walk the holders at most every this many epochs once reported
WITHIN_EPOCH_MIN_SAMPLES = 15
MAX_WINDOW_SAMPLES = 2000
WITHIN_EPOCH_MIN_STEP = {"rss": 8 * MB, "cuda": 4 * MB}  # per step window


def _where(holder: Any) -> str | None:
    """``train.py:42 in train()``, as the other checks write ``where``."""
    if holder is None or holder.where is None:
        return None
    owner = holder.owner if holder.owner.endswith("()") else ""
    return f"{holder.where} in {owner}" if owner else holder.where


def _severity(projection: dict) -> str:
    """An error when the memory runs out within the projected horizon (the run will be lost): near
    one of its epochs 0 .. projected_epochs - 1."""
    out = projection.get("runs_out_near_epoch")
    return "error" if out is not None and out < projection.get("projected_epochs", PROJECT_EPOCHS) else "warning"


RUN_LENGTH_NAMES = ("epochs", "num_epochs", "n_epochs", "max_epochs", "total_epochs", "nb_epochs")


def run_length(frames: list, done: int) -> tuple[int, str] | None:
    """The run's length in epochs when the training code names it: an int local called
    ``epochs``/``num_epochs``/``max_epochs``... (or such an attribute of ``self``/``args``/``config``)
    in the user's frames, larger than the epochs done. Returns (epochs, where it was found)."""
    for uf in frames:
        try:
            namespace = uf.namespace
        except Exception:
            continue
        candidates = [(name, namespace.get(name), name) for name in RUN_LENGTH_NAMES]
        for holder in ("self", "args", "config", "cfg", "hparams", "opt", "opts"):
            obj = namespace.get(holder)
            if obj is None:
                continue
            attrs = getattr(obj, "__dict__", None)
            if isinstance(attrs, dict):
                candidates += [(name, attrs.get(name), f"{holder}.{name}") for name in RUN_LENGTH_NAMES]
        for _name, value, label in candidates:
            if type(value) is int and done < value <= 10_000_000:
                return value, f"`{label}` in {uf.function}()"
    return None


def _user_epoch(epochs_completed: float) -> int:
    """The epoch, numbered as the user's loop numbers it (from 0), at whose end `epochs_completed`
    epochs are done: the one numbering of messages and evidence (an EpochSample's `epoch` counts)."""
    return int(round(epochs_completed - 1))


def _epoch_text(epochs_completed: float) -> str:
    """``epoch N``, N as the user's loop numbers it (from 0), at whose end `epochs_completed` epochs are done."""
    return f"epoch {fmt_int(_user_epoch(epochs_completed))}"


class MemoryCheck(Check):
    name = "memory"

    def __init__(self, run: Any):
        super().__init__(run)
        self.series = EpochSeries()
        self.holders: list[Any] = []
        self.holders_epoch = -CULPRIT_EVERY
        self.epoch_window: list[dict] = []  # sampler samples of the epoch in progress
        self.last_epoch_steps: int | None = None
        self.prev_epoch_end_steps = 0
        self.prev_retries: dict[int, int] = {}
        self.within_reported: set[tuple[str, bool]] = set()  # (series, in the first epoch)
        # finding key -> the epoch (from 0) at whose end the sample the growth is measured from was
        # taken when the rule first held: the baseline a message says ("since epoch N") and a chart marks
        self.since: dict[str, int] = {}
        self.latest_nvml: dict[int, dict] = {}  # torch device index -> NVML used/total (sampler)
        self.run_length: int | None = None  # epochs, when the training code names it
        self.horizon_source = ""

    # -- events -------------------------------------------------------------------------------------
    def on_memory_sample(self, event: Any) -> None:
        if event.data.get("at") == "epoch_end":
            self._on_epoch_end(event)
        else:
            self._on_sampler(event.data)

    # -- epoch end ----------------------------------------------------------------------------------
    def _on_epoch_end(self, event: Any) -> None:
        data, refs = event.data, event.refs or {}
        census = data.get("census") or {}
        cuda: dict[int, CudaMemory] = refs.get("cuda") or {}
        sample = EpochSample(
            epoch=int(data.get("epoch") or self.series.count + 1),
            steps=int(data.get("steps") or 0),
            tensor_count=census.get("count"),
            tensor_bytes=census.get("bytes"),
            graph_count=census.get("graph_count"),
            rss=data.get("rss"),
            cuda=cuda,
        )
        self.last_epoch_steps = sample.steps - self.prev_epoch_end_steps
        self.prev_epoch_end_steps = sample.steps
        self.epoch_window = []
        verdicts = self.series.add(sample)
        tensor_verdict = next((v for v in verdicts if v.series == "tensors"), None)
        for verdict in verdicts:
            if verdict.series == "tensors":
                if sample.tensor_count is not None:  # no census this epoch (time budget): keep the last word
                    self._report_tensors(verdict, sample, refs.get("diff"))
            elif verdict.series == "cuda":
                self._report_cuda(verdict, sample, tensor_verdict)
            elif verdict.series == "rss" and tensor_verdict is None:
                self._report_rss(verdict, sample)
            elif verdict.series == "fragmentation":
                self._report_fragmentation(verdict.device, sample, verdict)
        for device, mem in cuda.items():
            retries = mem.num_alloc_retries - self.prev_retries.get(device, 0)
            self.prev_retries[device] = mem.num_alloc_retries
            if retries > 0 and mem.reserved and mem.reserved_unallocated >= 0.2 * mem.reserved:
                if not any(v.series == "fragmentation" and v.device == f"cuda:{device}" for v in verdicts):
                    self._report_fragmentation(f"cuda:{device}", sample, None, retries=retries)

    def _projection(self, growth: Growth, limit: int | None, limit_name: str, epoch: int) -> tuple[str, dict]:
        horizon = self.horizon
        evidence: dict[str, Any] = {"projected_epochs": horizon}
        if self.horizon_source:
            evidence["run_length_from"] = self.horizon_source
        after = growth.project(horizon - epoch) if epoch < horizon else None
        text = ""
        if limit:
            until = growth.epochs_until(limit)
            if until is not None and until <= MAX_PROJECTED_EPOCHS:
                out_epoch = epoch + until
                evidence["limit_bytes"] = limit
                evidence["runs_out_near_epoch"] = _user_epoch(out_epoch)
                text = f"; the {limit_name} ({fmt_bytes(limit)}) runs out near {_epoch_text(out_epoch)}"
        if after is not None:
            evidence["projected_value"] = after
        return text, evidence

    def _report_tensors(self, verdict: Verdict, sample: EpochSample, diff: Any) -> None:
        epoch = sample.epoch
        count_rate = self._rate_of("tensor_count")
        byte_rate = self._rate_of("tensor_bytes") or self.series.recent_rate("tensor_bytes")
        since = self.since.setdefault("tensors", verdict.growth.since_index)  # the user's epoch, from 0
        holders = self.holders
        if diff is not None and epoch - self.holders_epoch >= CULPRIT_EVERY:
            from .holders import find_holders  # the walk (and the census, graphs) load at a first growth

            frames = stack_frames()
            holders = find_holders(diff, frames=frames)
            self.holders, self.holders_epoch = holders, epoch
            self._find_run_length(frames, epoch)
        named = [h for h in holders if h.kind != "graph-only" and h.tensors]
        graph_bytes = sum(h.graph_hidden_bytes for h in holders)  # not already in the census bytes
        # Of those, the saved tensors no Python object refers to are measured; the nodes themselves
        # are estimated (GRAPH_NODE_BYTES each), and the message says so.
        graph_node_estimate = sum(h.graph.node_bytes_estimate for h in holders if h.graph is not None)
        graph_saved = graph_bytes - graph_node_estimate
        held_rate = max(0.0, byte_rate) + graph_bytes
        proj_text, proj = "", {}
        if held_rate > 0:
            growth = Growth(rate=held_rate, increments=(), since_index=0, last=float(sample.tensor_bytes or 0))
            proj_text, proj = self._projection(growth, machine_ram_bytes(), "machine's RAM", epoch)
        parts = []
        if count_rate:
            parts.append(f"+{fmt_int(count_rate)} tensors/epoch")
        parts.append(f"+{fmt_bytes(max(0.0, byte_rate))}/epoch in live tensors (measured)")
        if graph_saved > 0:
            parts.append(f"+{fmt_bytes(graph_saved)}/epoch in tensors saved by their autograd graphs (measured)")
        if graph_node_estimate > 0:
            from .graphs import GRAPH_NODE_BYTES

            parts.append(f"~+{fmt_bytes(graph_node_estimate)}/epoch in autograd graph nodes "
                         f"(estimated, ~{fmt_bytes(GRAPH_NODE_BYTES)} per node)")
        estimated = " (partly estimated)" if graph_node_estimate > 0 else ""
        head = (f"Live tensors grow every epoch since epoch {since}: {', '.join(parts)}"
                f" (now {fmt_int(sample.tensor_count or 0)} tensors, {fmt_bytes(sample.tensor_bytes or 0)}"
                f" in Python-visible tensors).")
        horizon = self.horizon
        if count_rate and epoch < horizon:
            end = (f"the run's last epoch (epoch {horizon - 1}, from {self.horizon_source} = {horizon})"
                   if self.horizon_source else _epoch_text(horizon))
            head += (f" At this rate: {fmt_int((sample.tensor_count or 0) + count_rate * (horizon - epoch))}"
                     f" tensors and +{fmt_bytes(held_rate * (horizon - epoch))}{estimated} more by the end of {end}"
                     f"{proj_text}.")
        elif proj_text:
            head += f" At this rate, {proj_text.lstrip('; ')}."
        # Said whenever RSS was read, whatever its sign: words that hang on RSS's noise would differ
        # from one update to the next and from rank to rank, where the merge joins only the messages
        # that differ in their figures (one rank's growing RSS left its clause out of the other's).
        if self.series.rate_known("rss"):
            rss_rate = self.series.recent_rate("rss")
            head += (f" Process RSS over the same epochs: {'+' if rss_rate >= 0 else ''}{fmt_bytes(rss_rate)}/epoch "
                     "(median; RSS alone is noisy).")
        culprit_text, fix = self._culprit_text(named, holders, self.holders_epoch if self.holders_epoch != epoch else None)
        message = head + (" " + culprit_text if culprit_text else "")
        top = named[0] if named else None
        evidence = {
            **self._epochs(sample, since),
            "tensors_per_epoch": count_rate,
            "bytes_per_epoch": byte_rate,
            "graph_bytes_per_epoch": graph_bytes,  # measured saved tensors + estimated graph nodes
            "graph_saved_bytes_per_epoch": graph_saved,  # measured
            "graph_node_bytes_per_epoch_estimate": graph_node_estimate,  # ~GRAPH_NODE_BYTES per node
            "increments": list(verdict.growth.increments),
            "series": [s.tensor_count for s in self.series.samples],
            "bytes_series": [s.tensor_bytes for s in self.series.samples],
            "rss_series": [s.rss for s in self.series.samples],
            "holders": [h.to_dict() for h in holders[:5]],
            **proj,
        }
        if diff is not None:
            evidence["new_by_kind"] = [
                {"tensors": r.key.describe(), "count": r.count_diff, "bytes": r.bytes_diff} for r in diff.rows[:5]
            ]
        self.report(Finding(
            code="memory/tensor-growth",
            severity=_severity(proj),
            message=message,
            fix=fix,
            evidence=evidence,
            where=_where(top),
            key="tensors",
        ))

    def _epochs(self, sample: EpochSample, since: int) -> dict[str, int | None]:
        """The evidence's epochs, each numbered as the user's loop numbers it (from 0): `epoch`, the
        one at whose end the rule held this time; `baseline_epoch`, the one at whose end the sample
        the growth is measured from was taken; `series_from_epoch`, where the evidence's series
        start (they hold the last ``KEPT_SAMPLES`` epochs)."""
        return {"epoch": _user_epoch(sample.epoch), "baseline_epoch": since,
                "series_from_epoch": _user_epoch(self.series.samples[0].epoch) if self.series.samples else None}

    @property
    def horizon(self) -> int:
        return self.run_length if self.run_length else PROJECT_EPOCHS

    def _find_run_length(self, frames: list | None, epoch: int) -> None:
        if self.run_length is not None:
            return
        frames = frames if frames is not None else stack_frames()
        try:
            found = run_length(frames, epoch)
        finally:
            release_locals_snapshots(frames)  # reading f_locals must not keep old values alive
        if found is not None:
            self.run_length, self.horizon_source = found

    def _rate_of(self, series: str) -> float | None:
        growth = self.series.growth(series)
        return growth.rate if growth is not None else None

    def _culprit_text(self, named: list, holders: list, walked_at: int | None = None) -> tuple[str, str]:
        """The holders' sentences; `walked_at`: the epochs completed when they were found, when that is
        not this update's (the walk is redone every CULPRIT_EVERY epochs: its counts are that epoch's)."""
        if not named:
            only = next((h for h in holders if h.kind == "graph-only"), None)
            text = "No Python container holds the new tensors"
            if only is not None:
                text += f" ({only.tensors} tensors are kept alive only from C++, e.g. by autograd graphs or hooks)"
            return text + ".", ("Find what keeps the new tensors alive: store `loss.item()` / `.detach()` "
                                "instead of tensors, and bound every cache.")
        sentences = []
        fixes = []
        for h in named[:3]:
            if h.kind == "variable" and h.tensors == 1:
                s = f"{h.describe()} holds a new {fmt_bytes(h.bytes)} tensor, rebuilt larger every step"
            else:
                s = f"{h.describe()} holds {fmt_int(h.tensors)} new tensors ({fmt_bytes(h.bytes)})"
            if h.container_len is not None:
                s += f" out of {fmt_int(h.container_len)} items"
            if h.with_graph:
                g = h.graph
                s += f", {fmt_int(h.with_graph)} of them keeping autograd graphs alive"
                if g is not None and g.saved_bytes:
                    s += f" (~{fmt_bytes(g.saved_bytes)} of saved activations, {fmt_int(g.nodes)} graph nodes)"
                elif g is not None and g.nodes == 0:
                    s += " (graphs shared with the holder above)"
                elif g is not None:
                    s += (f" (~{fmt_bytes(g.node_bytes_estimate)} (estimated) in {fmt_int(g.nodes)} graph nodes; "
                          f"backward() already freed their saved tensors)")
            sentences.append(s)
            fixes.append(self._fix_for(h))
        when = f" (at the end of {_epoch_text(walked_at)}, when last looked for)" if walked_at is not None else ""
        text = f"Held by{when}: " + "; ".join(sentences) + "."
        seen: list[str] = []
        for f in fixes:
            if f not in seen:
                seen.append(f)
        return text, " ".join(seen)

    @staticmethod
    def _fix_for(h: Any) -> str:
        name = h.name
        if h.with_graph and h.graph is not None and h.graph.saved_bytes:
            return (f"`{name}` keeps whole graphs that were never backpropagated (a forward pass outside "
                    f"`torch.no_grad()`, e.g. evaluation): run it under `with torch.no_grad():` (or "
                    f"`torch.inference_mode()`) and keep `loss.item()`.")
        if h.with_graph:
            if h.scalars >= h.tensors / 2:
                return (f"Keep numbers, not graphs, in `{name}`: `{name}.append(loss.item())` (or "
                        f"`loss.detach()`) instead of the loss tensor.")
            return (f"Keep detached copies in `{name}`: `{name}.append(output.detach())` (`.detach().cpu()` "
                    f"to free device memory) instead of the tensor that carries its graph.")
        if h.kind == "variable":
            return (f"`{name}` is rebuilt larger every step (e.g. `torch.cat` onto itself): append the pieces "
                    f"to a list and concatenate once per epoch, or keep a bounded window or running statistics.")
        if h.kind in ("dict", "OrderedDict"):
            return (f"Bound the cache `{name}` (an LRU with a fixed size, e.g. evict with "
                    f"`{name}.pop(next(iter({name})))` past N entries, or clear it every epoch).")
        return (f"Bound `{name}` (`collections.deque(maxlen=N)`, or clear it every epoch), or keep "
                f"summaries (`.item()`, running means) instead of tensors.")

    def _report_cuda(self, verdict: Verdict, sample: EpochSample, tensor_verdict: Verdict | None) -> None:
        self._find_run_length(None, sample.epoch)
        device = verdict.device
        index = int(device.split(":")[1])
        mem = (sample.cuda or {}).get(index)
        total = mem.total if mem is not None else None
        proj_text, proj = self._projection(verdict.growth, total, "device's memory", sample.epoch)
        since = self.since.setdefault(device, verdict.growth.since_index)
        message = (f"CUDA memory allocated on {device} grows +{fmt_bytes(verdict.growth.rate)}/epoch since "
                   f"epoch {since} (now {fmt_bytes(verdict.growth.last)}){proj_text}.")
        named = [h for h in self.holders if h.kind != "graph-only"]
        if tensor_verdict is not None and named:
            message += f" The live-tensor census names the holder: {named[0].describe()} (see memory/tensor-growth)."
        fix = self._fix_for(named[0]) if named else (
            "Find what keeps tensors alive across steps (lists of losses/outputs, caches): store `.item()` or "
            "`.detach()` values and bound caches.")
        self.report(Finding(
            code="memory/cuda-growth",
            severity=_severity(proj),
            message=message,
            fix=fix,
            evidence={"device": device, "bytes_per_epoch": verdict.growth.rate,
                      "increments": list(verdict.growth.increments),
                      **self._epochs(sample, since),
                      "allocated_series": [getattr((s.cuda or {}).get(index), "allocated", None)
                                           for s in self.series.samples],
                      "nvml": self.latest_nvml.get(index),
                      **proj},
            where=_where(named[0]) if named else None,
            key=device,
        ))

    def _report_rss(self, verdict: Verdict, sample: EpochSample) -> None:
        self._find_run_length(None, sample.epoch)
        proj_text, proj = self._projection(verdict.growth, machine_ram_bytes(), "machine's RAM", sample.epoch)
        since = self.since.setdefault("rss", verdict.growth.since_index)
        self.report(Finding(
            code="memory/rss-growth",
            severity="warning",
            message=(f"Process RSS grows +{fmt_bytes(verdict.growth.rate)}/epoch since epoch "
                     f"{since} (now {fmt_bytes(verdict.growth.last)}){proj_text}, "
                     f"while the live tensors stay flat: the memory is held outside tensors "
                     f"(Python objects, numpy arrays, a growing log or cache)."),
            fix=("Look for containers that grow every step outside tensors (lists of dicts/arrays, logs kept in "
                 "memory) and bound them; `tracemalloc` snapshots compared across epochs show where."),
            evidence={"bytes_per_epoch": verdict.growth.rate, "increments": list(verdict.growth.increments),
                      **self._epochs(sample, since),
                      "rss_series": [s.rss for s in self.series.samples], **proj},
            key="rss",
        ))

    def _report_fragmentation(self, device: str, sample: EpochSample, verdict: Verdict | None,
                              retries: int = 0) -> None:
        index = int(device.split(":")[1])
        mem = (sample.cuda or {}).get(index)
        if mem is None:
            return
        what = []
        if verdict is not None:
            series = (verdict.detail or {}).get("series", "reserved-allocated")
            label = ("reserved but unallocated memory" if series == "reserved-allocated"
                     else "inactive split blocks")
            what.append(f"the caching allocator's {label} grows +{fmt_bytes(verdict.growth.rate)}/epoch")
        if retries:
            what.append(f"{retries} allocation(s) this epoch needed a retry after freeing cached blocks")
        message = (f"Memory fragmentation on {device}: " + "; ".join(what)
                   + f" (reserved {fmt_bytes(mem.reserved)}, allocated {fmt_bytes(mem.allocated)}, "
                     f"inactive split {fmt_bytes(mem.inactive_split)}).")
        self.report(Finding(
            code="memory/fragmentation",
            severity="warning",
            message=message,
            fix=("Set `PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True` before the process starts (lets the "
                 "allocator grow segments instead of splitting them); keep tensor shapes steady (pad variable "
                 "lengths to a few bucket sizes). Do not call `torch.cuda.empty_cache()` in the loop: it only "
                 "returns cached blocks and slows every later allocation."),
            evidence={"device": device, "reserved": mem.reserved, "allocated": mem.allocated,
                      "inactive_split": mem.inactive_split, "num_alloc_retries": mem.num_alloc_retries,
                      "retries_this_epoch": retries,
                      "bytes_per_epoch": verdict.growth.rate if verdict is not None else None},
            key=device,
        ))

    # -- within an epoch -----------------------------------------------------------------------------
    def _on_sampler(self, data: dict) -> None:
        for entry in data.get("nvml") or []:
            self.latest_nvml[entry["device"]] = entry
        self.epoch_window.append(data)
        if len(self.epoch_window) > MAX_WINDOW_SAMPLES:
            self.epoch_window = self.epoch_window[::2]  # keep long epochs bounded: halve the resolution
        if len(self.epoch_window) < WITHIN_EPOCH_MIN_SAMPLES or len(self.epoch_window) % 5:
            return
        first_step = self.prev_epoch_end_steps
        series: dict[str, list[tuple[int, float]]] = {}
        for s in self.epoch_window:
            step = s.get("steps", 0) - first_step
            if s.get("rss") is not None:
                series.setdefault("rss", []).append((step, s["rss"]))
            for c in s.get("cuda") or []:
                series.setdefault(f"cuda:{c['device']}", []).append((step, c["allocated"]))
        first_epoch = self.run.loop.epoch == 0
        for name, samples in series.items():
            if (name, first_epoch) in self.within_reported:
                continue
            kind = "rss" if name == "rss" else "cuda"
            epoch_key = ("rss", "process") if kind == "rss" else ("cuda", name)
            if self._epoch_finding_exists(epoch_key):
                continue
            found = window_growth(samples, min_step=WITHIN_EPOCH_MIN_STEP[kind])
            if found is None:
                continue
            per_step, start = found
            self.within_reported.add((name, first_epoch))
            epoch = self.run.loop.epoch  # the epoch in progress, from 0 as the user's loop numbers it
            steps_per_epoch = self.last_epoch_steps or None
            text = f"+{fmt_bytes(per_step * 100)} per 100 steps"
            if steps_per_epoch:
                text += f" (≈ +{fmt_bytes(per_step * steps_per_epoch)} over an epoch of {fmt_int(steps_per_epoch)} steps)"
            label = "process RSS" if kind == "rss" else f"CUDA memory allocated on {name}"
            # In the first epoch, caches that fill once (a dataset caching its samples, the
            # allocator's pools) rise the same way: say so, as info; from the second epoch on it is a warning.
            caveat = (" In the first epoch a cache that fills once (e.g. a dataset keeping loaded samples) looks "
                      "the same; if it goes on in the next epoch, it is a leak." if first_epoch else "")
            self.report(Finding(
                code="memory/growth-within-epoch",
                severity="info" if first_epoch else "warning",
                message=(f"Early warning in epoch {epoch}: the floor of {label} rises steadily across step windows: "
                         f"{text}, from {fmt_bytes(samples[0][1])} to {fmt_bytes(samples[-1][1])} over steps "
                         f"{fmt_int(first_step + samples[0][0])}-{fmt_int(first_step + samples[-1][0])}. "
                         f"The epoch-end census will name the holder if it keeps growing.{caveat}"),
                fix=("Check what the loop keeps per step (losses, outputs, caches): store `.item()` / `.detach()` "
                     "values and bound caches."),
                evidence={"series": name, "epoch": epoch, "bytes_per_step": per_step, "samples": len(samples),
                          "first_step": first_step + samples[0][0], "last_step": first_step + samples[-1][0]},
                key=name,
            ))

    def _epoch_finding_exists(self, key: tuple[str, str]) -> bool:
        code = "memory/rss-growth" if key[0] == "rss" else "memory/cuda-growth"
        fkey = "rss" if key[0] == "rss" else key[1]
        return any(f.code == code and f.key == fkey for f in self.run.findings)
