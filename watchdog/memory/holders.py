"""The culprit walk: from the tensors that are new in a census diff to the containers that hold them,
named as the user's code names them.

:func:`find_holders` takes a bounded sample of the new tensors, finds the containers that refer to
them with ``gc.get_referrers`` (one batched pass a round, then one pass per level up, at most ``max_depth``
levels), and names each container: a local variable in a user frame, a module global, or an
attribute of an object (itself named the same way). Each holder's count and bytes are exact (its
container is scanned for new tensors), and the autograd graphs its tensors keep alive are sized
(:func:`watchdog.memory.graphs.graph_size`). One :class:`HolderWalk` carries the state its steps
share.

Names come from the user's code, never from a training framework's (``core.frames``: framework
frames): a framework frame's variables never name a holder (``model`` in Lightning's ``_run()``),
and an object of the user's own class that no user frame holds (a LightningModule run by the
trainer) is where naming stops: its containers are named as that class's code names them,
``self.kept``, and located at the line of that class that grows them (``self.kept.append(loss)`` in
``training_step()``). A container reached through a framework's own object (Lightning's logged
metrics) is the framework's state: it is reported only when it holds many new tensors.
"""

from __future__ import annotations

import collections
import gc
import linecache
import os
import re
import sys
import time
import types
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

from ..core.frames import (UserFrame, is_framework_file, is_library_file, is_user_file, release_locals_snapshots,
                           stack_frames)
from .census import CensusDiff, tensor_storage, without_torch_function
from .graphs import GraphSize, graph_size

VARIABLE_MIN_BYTES = 1024 * 1024  # a single new tensor bound to a variable is named from this size
CONTAINER_TYPES = (list, dict, collections.deque, set)  # what accumulates tensors
SAMPLE_ROUNDS = 3  # gc.get_referrers passes that look for holders, each over a new sample



@dataclass
class Naming:
    """How the user's code names an object, and where to look for the line that grows it."""

    name: str  # "all_losses", "self.history['loss']", "trainer.cache"
    frame: "UserFrame | None" = None  # the user frame whose variable starts the name
    owner: str = ""  # "train()", "module level", "a Foo object"
    instance: Any = None  # the object of the user's class whose attribute starts the name (``self.``)
    attribute_of: Any = None  # the object whose attribute the name reaches last (``trainer`` in ``trainer.history``)
    framework: bool = False  # the name goes through a training framework's own object

    def child(self, suffix: str, through: Any) -> "Naming":
        """The name of an item or attribute of this object (``through``: the object it belongs to)."""
        return replace(self, name=self.name + suffix, framework=self.framework or _is_framework_object(through))


@dataclass
class Holder:
    """A container (or an object attribute) that holds new tensors, named as the user names it."""

    kind: str  # "list", "dict", "deque", "set", "attribute", "graph-only"
    name: str  # e.g. "all_losses", "self.cache", "trainer.history['loss']"
    owner: str = ""  # e.g. "train_with_memory_leak()", "module level", "Trainer object"
    filename: str | None = None
    lineno: int | None = None
    tensors: int = 0  # new tensors it holds
    with_graph: int = 0  # of those, how many have a grad_fn
    bytes: int = 0  # their storages (each once)
    container_len: int | None = None
    scalars: int = 0  # of those, how many hold a single number (a loss, a metric)
    graph: GraphSize | None = None  # what their autograd graphs keep alive (estimated)
    framework: bool = False  # a container reached through a training framework's own object (its state)
    _tensors: list = field(default_factory=list, repr=False)

    @property
    def where(self) -> str | None:
        if self.filename is None:
            return None
        base = os.path.basename(self.filename)
        return f"{base}:{self.lineno}" if self.lineno else base

    @property
    def graph_bytes(self) -> int:
        return self.graph.saved_bytes if self.graph is not None else 0

    @property
    def graph_hidden_bytes(self) -> int:
        """What the graphs hold that a census does not see: saved tensors without a Python object,
        and the nodes themselves (estimated)."""
        if self.graph is None:
            return 0
        return self.graph.hidden_bytes + self.graph.node_bytes_estimate

    def describe(self) -> str:
        if self.kind == "graph-only":
            return "tensors held only by autograd graphs or C++ (no Python container)"
        text = f"{self.kind} `{self.name}`"
        if self.owner:
            text += f" in {self.owner}"
        if self.where:
            text += f" at {self.where}"
        return text

    def to_dict(self) -> dict[str, Any]:
        out = {
            "kind": self.kind,
            "name": self.name,
            "owner": self.owner,
            "where": self.where,
            "tensors": self.tensors,
            "with_graph": self.with_graph,
            "bytes": self.bytes,
            "container_len": self.container_len,
            "scalars": self.scalars,
        }
        if self.graph is not None:
            out["graph"] = {
                "roots": self.graph.roots,
                "nodes": self.graph.nodes,
                "saved_bytes": self.graph.saved_bytes,
                "saved_freed_by_backward": self.graph.freed,
                "node_bytes_estimate": self.graph.node_bytes_estimate,
                "saved_by_hooks": self.graph.hooked,
            }
        return out


@without_torch_function
def find_holders(
    diff: CensusDiff,
    *,
    frames: list[UserFrame] | None = None,
    sample: int = 64,
    max_holders: int = 8,
    max_depth: int = 4,
    max_graph_roots: int = 200,
    min_tensors: int = 8,
    budget_s: float = 2.0,
) -> list[Holder]:
    """Names what holds the tensors that are new in ``diff``, most tensors first.

    Bounded: a stride sample of ``sample`` new tensors finds the holders (one batched
    ``gc.get_referrers`` pass a round, at most ``SAMPLE_ROUNDS`` rounds, each sampling the new
    tensors no holder named so far holds), at most ``max_holders`` are named (``max_depth`` levels up to a
    user frame's local, a module global, or an object attribute), and each holder's graphs are
    sized from at most ``max_graph_roots`` roots (scaled up). Past ``budget_s`` seconds, the
    remaining holders are named only from frames (no more ``gc.get_referrers`` passes). Holder counts and bytes are exact:
    the holder's container is scanned for new tensors. Tensors with no Python holder (kept alive
    from C++, typically saved by an autograd graph) are attributed to the holder whose graphs
    reach their storage, and the rest reported as one ``graph-only`` holder.
    """
    if frames is None:
        frames = stack_frames(sys._getframe(1))
    all_new = diff.new_tensors()
    try:
        walk = HolderWalk(all_new, frames, deadline=time.perf_counter() + budget_s)
        return walk.holders(diff, sample=sample, max_holders=max_holders, max_depth=max_depth,
                            max_graph_roots=max_graph_roots, min_tensors=min_tensors)
    finally:
        del all_new
        release_locals_snapshots(frames)


class HolderWalk:
    """One walk from the new tensors to their holders, and the state its steps share: which tensors
    are new, the user frames' variables, the modules' namespaces, the walk's own objects (never
    taken for holders) and the deadline past which names come from frames only."""

    __slots__ = ("new_tensors", "new_ids", "frame_locals", "locals_ids", "module_dicts", "internal", "deadline")

    def __init__(self, new_tensors: list, frames: list[UserFrame], deadline: float):
        self.new_tensors = new_tensors
        self.new_ids = {id(t) for t in new_tensors}
        self.module_dicts = _module_dicts()
        self.frame_locals: list[tuple[UserFrame, Any]] = []
        for uf in frames:
            if uf.framework:
                continue  # a framework's variables never name what the user's code holds
            try:
                self.frame_locals.append((uf, uf.namespace))
            except Exception:
                continue
        self.locals_ids = {id(d) for _, d in self.frame_locals}
        self.internal = {id(self), id(new_tensors), id(frames), id(self.frame_locals), id(self.new_ids)}
        self.deadline = deadline

    def holders(self, diff: CensusDiff, *, sample: int, max_holders: int, max_depth: int,
                max_graph_roots: int, min_tensors: int) -> list[Holder]:
        """The holders that matter, biggest first, then the variables, then the graph-only rest.

        In rounds: a sample of the new tensors no holder holds yet finds the next holders, until a
        round finds none, ``max_holders`` are named, fewer than ``min_tensors`` are left or the
        deadline passed. A ``gc.get_referrers`` pass costs the heap's references times the sample's
        size (~0.5 ms per sampled tensor with torch imported), so a small sample a round keeps the
        walk cheap where one container holds the leak, and a second round still finds a container
        that holds too few of the new tensors to be sampled in the first."""
        holders: list[Holder] = []
        held: set[int] = set()
        seen_nodes: set[int] = set()
        orphans = self.new_tensors
        for _ in range(SAMPLE_ROUNDS):
            targets = self.sample_targets(orphans, sample)
            candidates, hits = self.direct_holders(targets)
            found = [h for h in self.name_biggest(candidates, hits, max_holders - len(holders), max_depth, held)
                     if h._tensors]
            if not found:
                break
            self.size_graphs(found, diff, max_graph_roots, seen_nodes)
            holders.extend(found)
            orphans = _not_reached_by_graphs([t for t in orphans if id(t) not in held], found)
            self.internal.add(id(orphans))
            if len(holders) >= max_holders or len(orphans) < min_tensors or time.perf_counter() >= self.deadline:
                break
        if orphans:
            variables = self.variables_holding(orphans)
            taken = {id(v._tensors[0]) for v in variables}
            orphans = [t for t in orphans if id(t) not in taken]
            holders.extend(variables)
        if orphans:
            rest = Holder("graph-only", "<no Python container>")
            rest._tensors = orphans
            _fill_sizes(rest)
            holders.append(rest)
        for holder in holders:
            holder._tensors = []
        return [h for h in holders if _matters(h, min_tensors)]

    # -- the gc walk ----------------------------------------------------------------------------
    def referrers(self, *objs: Any) -> list:
        """What refers to ``objs``, less frames, the frames' locals and the walk's own objects."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = gc.get_referrers(*objs)
        internal, locals_ids = self.internal, self.locals_ids
        return [
            r for r in found
            if id(r) not in internal and not _isa(r, types.FrameType) and id(r) not in locals_ids
        ]

    def dict_owner(self, d: dict) -> Any:
        """The object whose ``__dict__`` is ``d``, or None."""
        for r in self.referrers(d):
            if not _isa(r, (dict, list, tuple)) and _dict_of(r) is d:
                return r
        return None

    # -- step 1: the containers that hold a sample of the new tensors ----------------------------
    def sample_targets(self, tensors: list, sample: int) -> list:
        """A stride sample of at most ``sample`` of ``tensors``."""
        targets = _stride_sample(tensors, sample)
        self.internal.add(id(targets))
        return targets

    def direct_holders(self, targets: list) -> tuple[dict, collections.Counter]:
        """The containers (or object attributes) holding the ``targets``, from one batched
        ``gc.get_referrers`` pass: ``{(id, attribute or None): (object, attribute or None)}``, and how
        many targets each holds."""
        direct = self.referrers(*targets) if targets else []
        self.internal.add(id(direct))
        candidates: dict[tuple[int, str | None], tuple[Any, str | None]] = {}
        hits: collections.Counter = collections.Counter()
        target_ids = {id(t) for t in targets}
        for r in direct:
            try:
                self._note_holder(r, target_ids, candidates, hits)
            except Exception:  # hostile objects: skip that referrer
                continue
        return candidates, hits

    def _note_holder(self, r: Any, target_ids: set[int], candidates: dict, hits: collections.Counter) -> None:
        """Count referrer ``r`` as a holder: a container, an attribute of an object (through its
        ``__dict__``), or, for a tuple, the container that holds the tuple."""
        if _isa(r, dict) and id(r) in self.module_dicts:
            return  # a module global bound to one tensor: not an accumulation
        if _isa(r, tuple):
            if not any(id(x) in target_ids for x in r):
                return
            r = next((c for c in self.referrers(r) if _isa(c, CONTAINER_TYPES)), None)
            if r is None:
                return
        if _isa(r, dict):
            owner = self.dict_owner(r)
            if owner is not None:
                for k, v in r.items():
                    if id(v) in target_ids:
                        candidates[(id(owner), k)] = (owner, k)
                        hits[(id(owner), k)] += 1
                return
        if _isa(r, CONTAINER_TYPES):
            n = len(_tensors_in(r, target_ids))
            if n:
                candidates[(id(r), None)] = (r, None)
                hits[(id(r), None)] += n
        elif not _isa(r, type) and _has_dict(r):
            attrs = _dict_of(r)
            if not _isa(attrs, dict):
                return
            for k, v in attrs.items():
                if id(v) in target_ids:
                    candidates[(id(r), k)] = (r, k)
                    hits[(id(r), k)] += 1

    # -- step 2: name the biggest holders and count their new tensors exactly ---------------------
    def name_biggest(self, candidates: dict, hits: collections.Counter, max_holders: int,
                     max_depth: int, held: set[int]) -> list[Holder]:
        """The ``max_holders`` holders with the most sampled tensors, named, each with the new tensors
        its container holds that are not in ``held`` yet (a tensor counted for the first holder only;
        ``held`` gets them). Past the deadline, names come from frames only."""
        holders: list[Holder] = []
        for cid, _n in sorted(hits.items(), key=lambda kv: -kv[1])[:max_holders]:
            obj, attr = candidates[cid]
            depth = max_depth if time.perf_counter() < self.deadline else 0  # over budget: frames only
            holder, tensors = self.holder_of(obj, attr, depth)
            holder._tensors = [t for t in tensors if id(t) not in held]
            held.update(id(t) for t in holder._tensors)
            holders.append(holder)
        return holders

    def holder_of(self, obj: Any, attr: str | None, depth: int) -> tuple[Holder, list]:
        """The holder for ``obj`` (a container) or ``obj.<attr>``, named up to ``depth`` levels, and
        the new tensors its container holds."""
        if attr is None:
            container = obj
            kind = _kind_of(container)
            named = self.name_of(container, depth, frozenset())
            tensors = _tensors_in(container, self.new_ids)
        else:
            value = (_dict_of(obj) or {}).get(attr)
            container = value
            if _isa(value, CONTAINER_TYPES):
                kind = _kind_of(value)
                tensors = _tensors_in(value, self.new_ids)
            else:
                kind = "attribute"
                tensors = [value] if id(value) in self.new_ids else []
            named = self.attribute_name(obj, attr, depth, frozenset())
        holder = _holder_named(kind, named)
        try:
            holder.container_len = len(container)
        except Exception:
            holder.container_len = None
        return holder, tensors

    # -- naming -----------------------------------------------------------------------------------
    def frame_name(self, obj: Any) -> Naming | None:
        """``obj`` as a variable of a user frame (innermost first), or None."""
        for uf, loc in self.frame_locals:
            for k, v in loc.items():
                if v is obj:
                    return Naming(k, uf, _display_function(uf.function))
        return None

    def attribute_name(self, obj: Any, attr: str, depth: int, seen: frozenset) -> Naming:
        """The name of ``obj.<attr>``: through a user frame's variable holding ``obj``; else, for an
        object of the user's own class, ``self.<attr>`` as its class writes it; else ``obj`` named
        through its referrers (``depth - 1`` levels), or by its type."""
        named = self.frame_name(obj)
        if named is None and _user_classes(type(obj)):
            return Naming(f"self.{attr}", None, f"a {type(obj).__name__} object", instance=obj)
        if named is None and depth > 0:
            named = self.name_of(obj, depth - 1, seen)
        if named is None:
            named = Naming(type(obj).__name__, None, f"a {type(obj).__name__} object")
        return replace(named.child(f".{attr}", obj), attribute_of=obj)

    def name_of(self, obj: Any, depth: int, seen: frozenset) -> Naming | None:
        """How the user's code names ``obj``: a variable of a user frame, else (``depth`` levels up
        through its referrers) a module global, an item of a named container or an attribute of an
        object (see :meth:`attribute_name`)."""
        named = self.frame_name(obj)
        if named is not None:
            return named
        if depth <= 0:
            return None
        seen = seen | {id(obj)}
        refs = [r for r in self.referrers(obj) if id(r) not in seen]
        self.internal.add(id(refs))
        try:
            return self._name_from_referrers(obj, refs, depth, seen)
        except Exception:  # hostile objects (proxies, odd __getattr__): leave it unnamed
            return None
        finally:
            self.internal.discard(id(refs))

    def _name_from_referrers(self, obj: Any, refs: list, depth: int, seen: frozenset) -> Naming | None:
        """A module global first; else the first referrer that is a named dict, list, tuple, deque
        or object (its ``__dict__``), with ``obj``'s key, index or attribute appended."""
        for r in refs:
            if _isa(r, dict) and id(r) in self.module_dicts:
                key = next((k for k, v in r.items() if v is obj), None)
                if key is not None and not key.startswith("__"):
                    return Naming(key, None, f"module {self.module_dicts[id(r)]}" + _module_file(r))
        for r in refs:
            if _isa(r, dict):
                key = next((k for k, v in r.items() if v is obj), None)
                if key is None:
                    continue
                owner = self.dict_owner(r)
                if owner is not None:
                    return self.attribute_name(owner, key, depth, seen | {id(r)})
                up = self.name_of(r, depth - 1, seen)
                if up is not None:
                    return up.child(f"[{key!r}]", r)
            elif _isa(r, (list, tuple, collections.deque)):
                up = self.name_of(r, depth - 1, seen)
                if up is not None:
                    idx = next((i for i, v in enumerate(r) if v is obj), None)
                    return up.child(f"[{idx}]", r)
            elif not _isa(r, type) and _has_dict(r):
                attrs = _dict_of(r)
                if not _isa(attrs, dict):
                    continue
                key = next((k for k, v in attrs.items() if v is obj), None)
                if key is None:
                    continue
                return self.attribute_name(r, key, depth, seen)
        return None

    # -- step 3: sizes, and the graphs the holders keep alive -------------------------------------
    def size_graphs(self, holders: list[Holder], diff: CensusDiff, max_graph_roots: int,
                    seen_nodes: set[int]) -> None:
        """Each holder's count and bytes, and the autograd graphs its tensors keep alive, sized from
        at most ``max_graph_roots`` roots (scaled up). Storages alive before the diff's older census,
        and the holder's own tensors, are not counted as graph memory; nodes shared with an earlier
        holder's graphs (``seen_nodes``, which gets this one's) are counted there."""
        older_storages = diff.kept_storages
        for holder in holders:
            _fill_sizes(holder)
            roots = [t for t in holder._tensors if t.grad_fn is not None]
            if roots:
                own = {tensor_storage(t)[0] for t in holder._tensors}
                picked = _stride_sample(roots, max_graph_roots)
                size = graph_size(picked, exclude_storages=AnyOf(older_storages, own),
                                  visible_storages=diff.newer.storages, seen_nodes=seen_nodes)
                if len(picked) < len(roots):
                    scale = len(roots) / len(picked)
                    size.saved_bytes = int(size.saved_bytes * scale)
                    size.hidden_bytes = int(size.hidden_bytes * scale)
                    size.nodes = int(size.nodes * scale)
                holder.graph = size

    # -- step 4: new tensors no container holds ----------------------------------------------------
    def variables_holding(self, orphans: list) -> list[Holder]:
        """The biggest orphans (at least ``VARIABLE_MIN_BYTES``, at most 8) bound to a variable (or
        ``self.x``) of a user frame: a tensor rebuilt larger every step
        (``preds = torch.cat([preds, p])``) grows without any container."""
        bound = []
        for t in sorted(orphans, key=lambda x: -tensor_storage(x)[1])[:8]:
            if tensor_storage(t)[1] < VARIABLE_MIN_BYTES:
                break
            for uf, loc in self.frame_locals:
                name = next((k for k, v in loc.items() if v is t), None)
                if name is None:
                    this = loc.get("self")
                    attrs = _dict_of(this) if this is not None else None
                    if _isa(attrs, dict):
                        name = next((f"self.{k}" for k, v in attrs.items() if v is t), None)
                if name is not None:
                    variable = Holder("variable", name, _display_function(uf.function), uf.filename,
                                      _growth_line(uf, name))
                    variable._tensors = [t]
                    _fill_sizes(variable)
                    bound.append(variable)
                    break
        return bound


def _holder_named(kind: str, named: Naming | None) -> Holder:
    """A holder of ``kind`` with its name, owner and the line that grows it (in the naming frame's
    function or file, in the methods of the user's class for ``self.``, or the module's file for a
    global)."""
    if named is None:
        return Holder(kind, f"<unnamed {kind}>")
    name, uf, owner = named.name, named.frame, named.owner
    filename = lineno = None
    if named.instance is not None:
        owner, filename, lineno = _line_in_class(type(named.instance), name, owner)
    elif uf is not None:
        filename, lineno = uf.filename, _growth_line(uf, name, function_only=True)
        if lineno is None and named.attribute_of is not None:  # then in the methods of the object's class
            found = _line_in_class(type(named.attribute_of), name, owner)
            if found[2] is not None:
                owner, filename, lineno = found
        if lineno is None:
            lineno = _growth_line(uf, name)
    elif owner.startswith("module ") and "(" in owner:
        filename = owner[owner.index("(") + 1:-1]
        owner = owner[: owner.index(" (")]
    return Holder(kind, name, owner, filename, lineno, framework=named.framework)


def _user_classes(cls: type) -> list[type]:
    """The classes of ``cls``'s MRO defined in the user's own files (not a library's, not watchdog's)."""
    out = []
    for klass in cls.__mro__:
        module = sys.modules.get(getattr(klass, "__module__", None) or "")
        filename = getattr(module, "__file__", None)
        if isinstance(filename, str) and is_user_file(filename) and not is_library_file(filename):
            out.append(klass)
    return out


def _is_framework_object(obj: Any) -> bool:
    """An object of a training framework's own class (Lightning's trainer and connectors, ...)."""
    module = sys.modules.get(getattr(type(obj), "__module__", None) or "")
    filename = getattr(module, "__file__", None)
    return isinstance(filename, str) and is_framework_file(filename)


def _line_in_class(cls: type, name: str, owner: str) -> tuple[str, str | None, int | None]:
    """(owner, file, line) of the line in ``cls``'s own methods (or its user base classes') that
    grows ``name`` (``self.kept``): ``("Classifier.training_step()", "train.py", 42)``; without one,
    the file of the class's first method and no line."""
    patterns = [_growth_pattern(candidate) for candidate in _name_variants(name)]
    first_file = None
    for klass in _user_classes(cls):
        for value in list(vars(klass).values()):
            function = getattr(value, "__func__", None) or getattr(value, "fget", None) or value
            code = getattr(function, "__code__", None)
            if not isinstance(code, types.CodeType):
                continue
            first_file = first_file or code.co_filename
            try:
                last = max((ln for _, _, ln in code.co_lines() if ln is not None), default=code.co_firstlineno)
            except Exception:
                continue
            for pattern in patterns:
                for ln in range(code.co_firstlineno, last + 1):
                    line = linecache.getline(code.co_filename, ln)
                    if line and pattern.search(line):
                        return f"{klass.__name__}.{code.co_name}()", code.co_filename, ln
    return owner, first_file, None


def _name_variants(name: str) -> list[str]:
    """``a.b['k']``, then ``a.b``, then ``.b``: the forms a line that grows ``name`` may use."""
    plain = name.split("[", 1)[0]
    names = [name] if "[" in name else []
    names.append(plain)
    if "." in plain:
        names.append("." + plain.rsplit(".", 1)[1])
    return names


def _not_reached_by_graphs(orphans: list, holders: list[Holder]) -> list:
    """The orphans whose storage no holder's graphs reach: tensors kept alive only by a holder's
    graphs belong to that holder."""
    for holder in holders:
        if holder.graph is None or not holder.graph.storages:
            continue
        reached = holder.graph.storages
        orphans = [t for t in orphans if tensor_storage(t)[0] not in reached]
    return orphans


def _matters(holder: Holder, min_tensors: int) -> bool:
    """A holder matters if it accumulates (holds more than this epoch's new tensors) or holds many;
    a container rebuilt every step (the current batch) holds only a few new tensors. A framework's
    own state (the metrics it logged last) matters only when it holds many."""
    if holder.framework:
        return holder.tensors >= min_tensors
    return bool(holder.tensors) and (
        holder.kind in ("graph-only", "variable") or holder.tensors >= min_tensors
        or (holder.container_len is not None and holder.container_len > holder.tensors))


class AnyOf:
    """Membership in any of several sets."""

    __slots__ = ("_sets",)

    def __init__(self, *sets: Any):
        self._sets = sets

    def __contains__(self, value: Any) -> bool:
        return any(value in s for s in self._sets)


def _dict_of(obj: Any) -> Any:
    try:
        return object.__getattribute__(obj, "__dict__")
    except Exception:
        return None


def _has_dict(obj: Any) -> bool:
    return _dict_of(obj) is not None


def _isa(obj: Any, kinds: Any) -> bool:
    """``isinstance`` by the real type: a proxy's ``__class__`` property is never called."""
    try:
        return issubclass(type(obj), kinds)
    except Exception:
        return False


def _stride_sample(items: list, limit: int) -> list:
    if len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def _tensors_in(container: Any, new_ids: set[int]) -> list:
    """New tensors directly in ``container`` or one tuple/dict level below it."""
    found = []
    try:
        values = container.values() if _isa(container, dict) else container
        for v in values:
            if id(v) in new_ids:
                found.append(v)
            elif _isa(v, (tuple, list)) and len(v) <= 16:
                found.extend(x for x in v if id(x) in new_ids)
            elif _isa(v, dict) and len(v) <= 16:
                found.extend(x for x in v.values() if id(x) in new_ids)
    except Exception:
        pass
    return found


def _fill_sizes(holder: Holder) -> None:
    seen: set = set()
    for t in holder._tensors:
        holder.tensors += 1
        try:
            if t.numel() == 1:
                holder.scalars += 1
        except Exception:
            pass
        if getattr(t, "grad_fn", None) is not None:
            holder.with_graph += 1
        ident, nbytes = tensor_storage(t)
        if ident is not None:
            if ident in seen:
                continue
            seen.add(ident)
        holder.bytes += nbytes


def _module_file(module_dict: dict) -> str:
    filename = module_dict.get("__file__")
    return f" ({filename})" if _isa(filename, str) else ""


def _kind_of(container: Any) -> str:
    if _isa(container, collections.OrderedDict):
        return "OrderedDict"
    if _isa(container, dict):
        return "dict"
    if _isa(container, list):
        return "list"
    if _isa(container, collections.deque):
        return "deque"
    if _isa(container, (set, frozenset)):
        return "set"
    return type(container).__name__


def _display_function(code_name: str) -> str:
    return "module level" if code_name == "<module>" else f"{code_name}()"


def _module_dicts() -> dict[int, str]:
    out = {}
    for name, module in list(sys.modules.items()):
        try:
            out[id(module.__dict__)] = name
        except Exception:
            continue
    return out


_GROWTH_PATTERNS: dict[str, re.Pattern] = {}


def _growth_pattern(name: str) -> re.Pattern:
    """``name`` (``a.b``, ``a['k']``, ``.b``) followed by what grows a container."""
    pattern = _GROWTH_PATTERNS.get(name)
    if pattern is None:
        base, _, rest = name.partition("[")
        parts = [re.escape(base)]
        for sub in re.findall(r"\[([^\]]*)\]", "[" + rest if rest else ""):
            key = sub.strip().strip("'\"")
            if sub.strip()[:1] in ("'", '"'):
                parts.append(r"\[\s*['\"]" + re.escape(key) + r"['\"]\s*\]")
            else:
                parts.append(r"\[[^\]]*\]")
        lead = "" if name.startswith(".") else r"(?<![\w.])"  # `.c` follows any `a.b`
        target = lead + "".join(parts)
        pattern = re.compile(
            target
            + r"\s*(\.(append|extend|insert|add|update|setdefault|appendleft)\s*\(|\[[^\]]*\]\s*=(?!=)|\+=)"
            + r"|" + target + r"\s*=(?!=).*" + target + r"(?![\w])"  # rebuilt from itself: x = cat([x, y])
        )
        _GROWTH_PATTERNS[name] = pattern
    return pattern


def _growth_line(uf: UserFrame, name: str, function_only: bool = False) -> int | None:
    """The line in the frame's function that grows ``name`` (``name.append(``, ``name[k] =``,
    ``name +=`` ...; for ``a.b.c`` also ``.c.append(`` ...), else in its file, else the frame's
    current line (``function_only``: None when the function has no such line)."""
    code = uf.frame.f_code if uf.frame is not None else None
    if code is None:
        return None if function_only else uf.lineno
    try:
        lines = sorted({ln for _, _, ln in code.co_lines() if ln is not None})
    except Exception:
        return None if function_only else uf.lineno
    whole_file = range(1, len(linecache.getlines(uf.filename)) + 1)
    if code.co_name != "<module>" and lines:
        candidates: range = range(code.co_firstlineno, lines[-1] + 1)
    else:
        candidates = whole_file
    names = _name_variants(name)
    for lines_to_search in ((candidates,) if function_only else (candidates, whole_file)):
        for candidate in names:  # the naming function first, then its file
            pattern = _growth_pattern(candidate)
            for ln in lines_to_search:
                line = linecache.getline(uf.filename, ln)
                if line and pattern.search(line):
                    return ln
    return None if function_only else uf.lineno
