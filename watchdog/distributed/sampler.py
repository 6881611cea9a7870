"""``distributed/sampler-epoch-unchanged``: a shuffling ``DistributedSampler`` whose epoch never moves.

``DistributedSampler(shuffle=True)`` draws each pass's order from ``seed + epoch``, and only
``sampler.set_epoch(epoch)`` changes the epoch. Without it every epoch serves the same order (and,
on each rank, the same shard). One rank sees it alone: the DataLoader probe records each pass's
epoch-driven sampler as the pass starts (``loader_pass_end``'s ``sampler``: type, shuffle, epoch,
names); two training passes over one dataset with the same epoch are the finding. Every rank
reports it under the same key, and the merge names them once ("ranks 0, 1").
"""
from __future__ import annotations

from typing import Any

from ..core.check import Check
from ..core.findings import Finding

CODE = "distributed/sampler-epoch-unchanged"


class SamplerEpochUnchanged(Check):
    """Training passes over one dataset whose shuffling epoch-driven sampler kept its epoch."""

    name = "sampler-epoch"

    def __init__(self, run: Any):
        super().__init__(run)
        self.epochs: dict[Any, list[Any]] = {}  # the dataset's key -> the sampler's epoch at each training pass

    def on_loader_pass_end(self, event: Any) -> None:
        data = event.data
        sampler = data.get("sampler")
        if data.get("role") != "train" or not sampler or sampler.get("shuffle") is not True:
            return
        info = (event.refs or {}).get("loader_info")
        stream = info.dataset_id if info is not None else data.get("loader_id")
        seen = self.epochs.setdefault(stream, [])
        seen.append(sampler.get("epoch"))
        repeated = sorted({e for e in seen if seen.count(e) > 1}, key=str)
        if repeated:
            self._report(stream, sampler, data, seen, repeated, info)

    def _report(self, stream: Any, sampler: dict[str, Any], data: dict[str, Any], seen: list[Any],
                repeated: list[Any], info: Any) -> None:
        loader = data.get("loader") or "the training loader"
        names = sampler.get("names") or []
        kind = sampler.get("type") or "sampler"
        if names:
            who, call = f"`{names[-1]}` ({kind}, shuffle=True)", f"{names[-1]}.set_epoch(epoch)"
        else:
            who, call = f"the {kind} of {loader} (shuffle=True)", "sampler.set_epoch(epoch)"
        if len(set(seen)) == 1:
            what = f"its epoch stayed {seen[0]} over all {len(seen)} training passes of {loader}"
        else:
            what = (f"its epoch repeated ({', '.join(map(str, repeated))}) over {len(seen)} training passes of "
                    f"{loader} (epochs {', '.join(map(str, seen))})")
        self.report(Finding(
            code=CODE,
            severity="warning",
            message=f"{who} shuffles every epoch into the same order: {what}, so `set_epoch` is not called "
                    "each epoch and every epoch repeats the first one's order and shards.",
            fix=f"Call `{call}` at the top of each epoch, before iterating {loader}: the sampler draws its "
                "order from seed + epoch, and only set_epoch moves the epoch.",
            evidence={"sampler": {k: v for k, v in sampler.items() if k != "rank"}, "epochs": list(seen),
                      "training_passes": len(seen), "loader": info.to_dict() if info is not None else loader},
            where=data.get("where"),
            key=f"sampler:{stream}",
        ))
