"""Autograd graphs: how much a set of graphs keeps alive.

:func:`graph_size` walks the autograd graphs that tensors keep alive (``grad_fn`` /
``next_functions``) and sums the saved tensors it finds, read without unpacking: no saved-tensor
hook runs, no data is read, no device syncs. The culprit walk (:mod:`watchdog.memory.holders`) sizes
each holder's graphs with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import torch

from .census import tensor_storage, without_torch_function


_SAVED_NAMES: dict[type, tuple[str, ...]] = {}


def _raw_saved_names(node: Any) -> tuple[str, ...]:
    kind = type(node)
    names = _SAVED_NAMES.get(kind)
    if names is None:
        try:
            names = tuple(n for n in dir(node) if n.startswith("_raw_saved_"))
        except Exception:
            names = ()
        _SAVED_NAMES[kind] = names
    return names


# What one autograd node costs, roughly (C++ node, edges, metadata): measured ~5.2 KB of RSS per
# kept, backpropagated loss of a 3-layer MLP (about 5 new nodes a step) on torch 2.13 CPU.
GRAPH_NODE_BYTES = 1024


@dataclass
class GraphSize:
    roots: int = 0
    nodes: int = 0
    saved_tensors: int = 0
    saved_bytes: int = 0  # storages not excluded (not already alive elsewhere)
    freed: int = 0  # saved tensors already released by backward()
    hooked: int = 0  # saved tensors packed by saved-tensor hooks (checkpointing...): not unpacked
    hidden_bytes: int = 0  # part of saved_bytes in storages no Python tensor refers to (census-invisible)
    truncated: bool = False
    storages: set = field(default_factory=set, repr=False)  # storage identities reached

    @property
    def node_bytes_estimate(self) -> int:
        return self.nodes * GRAPH_NODE_BYTES


@without_torch_function
def graph_size(
    tensors: Iterable[torch.Tensor],
    *,
    exclude_storages: set | None = None,
    visible_storages: set | None = None,
    max_nodes: int = 20000,
    seen_nodes: set | None = None,
) -> GraphSize:
    """Nodes and saved-tensor bytes kept alive by the autograd graphs of ``tensors``.

    Reads each node's saved variables through ``_raw_saved_*`` (``SavedTensor.data``), which never
    unpacks: saved-tensor hooks (activation checkpointing, ``save_on_cpu``) are not run, and what
    they packed is counted only when it is a tensor. Graphs that share nodes (parameters'
    AccumulateGrad, shared subgraphs) are counted once, and so are storages; storages in
    ``exclude_storages`` (tensors alive anyway, e.g. parameters) are reached but not counted;
    ``hidden_bytes`` is the part of ``saved_bytes`` outside ``visible_storages`` (what a census,
    which sees only Python tensors, does not count).
    """
    exclude = exclude_storages if exclude_storages is not None else set()
    visible = visible_storages if visible_storages is not None else set()
    size = GraphSize()
    if seen_nodes is None:
        seen_nodes = set()  # pass one set to size several holders' graphs without double counting
    for t in tensors:
        root = getattr(t, "grad_fn", None)
        if root is None or id(root) in seen_nodes:
            continue
        size.roots += 1
        stack = [root]
        while stack:
            node = stack.pop()
            if node is None or id(node) in seen_nodes:
                continue
            seen_nodes.add(id(node))
            size.nodes += 1
            if size.nodes > max_nodes:
                size.truncated = True
                return size
            for name in _raw_saved_names(node):
                try:
                    raw = getattr(node, name)
                except Exception:
                    continue
                for saved in raw if isinstance(raw, (list, tuple)) else (raw,):
                    _count_saved(node, name, saved, size, exclude, visible)
            try:
                stack.extend(nf for nf, _ in node.next_functions)
            except Exception:
                pass
    return size


def _count_saved(node: Any, name: str, saved: Any, size: GraphSize, exclude: set, visible: set) -> None:
    try:
        hooked = getattr(saved, "unpack_hook", None) is not None
        data = saved.data  # the packed value: never runs an unpack hook
    except Exception:
        return
    if not isinstance(data, torch.Tensor):
        if hooked:
            size.hooked += 1
        elif data is None:
            # Undefined (not needed) or released by backward(): without hooks, unpacking is safe
            # and tells them apart (released ones raise).
            try:
                getattr(node, "_saved_" + name[len("_raw_saved_"):])
            except RuntimeError:
                size.freed += 1
            except Exception:
                pass
        return
    size.saved_tensors += 1
    ident, nbytes = tensor_storage(data)
    if ident is None or ident in size.storages:
        return
    size.storages.add(ident)
    if ident not in exclude:
        size.saved_bytes += nbytes
        if ident not in visible:
            size.hidden_bytes += nbytes

