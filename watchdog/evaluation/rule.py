"""The evaluation-cadence rule, in one place: which epochs miss their evaluation, and what to say.

:class:`CadenceRule` judges a sequence of trained epochs (each evaluated or not),
:func:`missing_epochs_finding` words ``eval/missing-epochs``, :func:`step_based_finding` judges loops
without epochs (``eval/only-at-end``, ``eval/never``). The live check (``cadence.py``) feeds them one
process's epochs as their windows close; the cross-rank check (``crossrank.py``) feeds them the union
of a multi-process job's ranks. Pure: no torch, no run, so ``watchdog report DIR`` can merge ranks
without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.findings import Finding
from ..core.format import fmt_ranges

STEP_RUN_MIN_STEPS = 1000  # step-based loops shorter than this are not judged
MIN_TRAINED_EPOCHS = 2  # fewer trained epochs have no cadence: such runs are judged by steps
EVIDENCE_CAP = 200

CADENCE_FIX = (
    "Evaluate inside the epoch loop: `for epoch in range(num_epochs): train_one_epoch(...); "
    "evaluate(model, val_loader)` (with `model.eval()` and `torch.no_grad()` inside evaluate, and "
    "`model.train()` before training again). If you validate every N epochs on purpose, say so with "
    "`watchdog.watch(eval_every=N)` (CLI: --eval-every N)."
)
NOTHING_HELD_OUT_FIX = ("Nothing to do if this run has nothing to evaluate on (a GAN, self-supervised "
                        "pre-training). Otherwise hold out part of the data. ")



class EpochRanges:
    """Epochs added in increasing order, kept as ranges: ``fmt_ranges`` without re-sorting them all."""

    __slots__ = ("ranges",)

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []  # [first, last], increasing, not touching

    def add(self, epoch: int) -> None:
        ranges = self.ranges
        if ranges and epoch <= ranges[-1][1]:
            return  # already in
        if ranges and epoch == ranges[-1][1] + 1:
            ranges[-1][1] = epoch
        else:
            ranges.append([epoch, epoch])

    def text(self) -> str:
        """As ``fmt_ranges`` writes it: ``0–2, 4, 6–7``."""
        return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in self.ranges)


class CadenceRule:
    """The cadence rule on a sequence of trained epochs, each evaluated or not, added in order: a run
    of ``every`` or more consecutive epochs without evaluation is missing its evaluation.

    The live check adds each epoch as its window closes; the cross-rank check adds the union of the
    ranks' verdicts. Both read the same state: what is missing, and the gap still open at the end.
    """

    def __init__(self, every: int):
        self.every = every
        self.epochs = 0  # trained epochs judged
        self.evaluated_epochs: list[int] = []
        self.gap: list[int] = []  # trailing run of trained, unevaluated epochs
        self.missing: list[int] = []  # epochs in gaps of `every` or more (in order, each once)
        self.missing_ranges = EpochRanges()  # the same, as ranges
        self.trailing_missing: list[int] = []  # the part of `missing` in the gap still open

    def add(self, epoch: int, evaluated: bool) -> bool:
        """Judge trained epoch ``epoch`` (epochs come in increasing order). True when this made
        epochs missing: the open gap reached ``every`` epochs, or grew past it."""
        self.epochs += 1
        if evaluated:
            self.evaluated_epochs.append(epoch)
            self.gap = []
            self.trailing_missing = []
            return False
        self.gap.append(epoch)
        if len(self.gap) == self.every:
            self._add_missing(self.gap)
            self.trailing_missing = list(self.gap)
        elif len(self.gap) > self.every:
            self._add_missing([epoch])
            self.trailing_missing.append(epoch)
        else:
            return False
        return True

    def _add_missing(self, epochs: list[int]) -> None:
        for epoch in epochs:
            self.missing.append(epoch)
            self.missing_ranges.add(epoch)


@dataclass
class EvaluationFacts:
    """What the words of ``eval/missing-epochs`` depend on besides the epochs: when evaluation ran."""

    steps: int  # optimizer steps when the verdict is given
    first_eval: int | None  # the first evaluation step after step 0 (None: no evaluation ran)
    eval_steps: list[int]  # the first EVIDENCE_CAP distinct evaluation steps
    held_out: list[str]  # held-out data found near the loop (looked for when no evaluation ran)
    epoch_source: str | None
    epoch_end_steps: list[int]  # B_e of each judged epoch
    where: str | None  # the training loader's line
    cadence_source: str = ""  # where the cadence judged comes from, when not eval_every ("Lightning's check_val_every_n_epoch=2")
    not_evaluating: str = ""  # a framework's trainer set not to evaluate ('the HF Trainer is set to eval_strategy="no"')
    framework_fix: str = ""  # the framework's way to evaluate every epoch, when its trainer ran the loop


def missing_epochs_finding(rule: CadenceRule, facts: EvaluationFacts, *, final: bool, scope: str = "",
                           rank_alone: int | None = None) -> Finding:
    """``eval/missing-epochs`` for the epochs ``rule`` found missing.

    ``scope`` follows "had no evaluation" (the cross-rank check says " on any rank");
    ``rank_alone`` is the rank of a multi-process run judging only its own epochs: its view is
    ``info`` and says that the merged report decides.
    """
    missing = rule.missing  # in order, each epoch once
    total = rule.epochs
    steps = facts.steps
    ranges = rule.missing_ranges.text()
    plural = "epochs" if len(missing) > 1 else "epoch"
    evaluated = rule.evaluated_epochs
    only_after = final and facts.first_eval is not None and facts.first_eval >= steps
    never = facts.first_eval is None
    nothing_held_out = never and not facts.held_out
    trailing_only = (final and not never and not only_after and bool(evaluated)
                     and missing == sorted(rule.trailing_missing) and len(missing) <= rule.every)
    cadence = f"at least one every {rule.every} epochs" if rule.every > 1 else "one after every epoch"
    if facts.cadence_source:
        cadence += f", {facts.cadence_source}"
    if final:
        message = f"{plural.capitalize()} {ranges} of {total} had no evaluation{scope}"
        if only_after:
            message += f"; the only evaluation ran after training (at step {steps}), so no metric " \
                       "watched the run while it trained"
        elif never:
            message += "; no evaluation ran at all during this run"
            if nothing_held_out:
                message += (" and no held-out data was found (no evaluation loader, no validation split),"
                            " so there may be nothing to evaluate on")
            elif facts.not_evaluating:
                message += (f", although held-out data exists ({', '.join(facts.held_out[:3])}): "
                            f"{facts.not_evaluating}")
        elif trailing_only:
            message += f": evaluation stopped after epoch {max(evaluated)}, so the final weights " \
                       "were never evaluated"
        else:
            message += f" (expected {cadence}); evaluated epochs: {fmt_ranges(evaluated)}"
    else:
        message = (f"{plural.capitalize()} {ranges} closed without any evaluation{scope} so far "
                   f"(expected {cadence}; {total} epoch(s) ended, {steps} optimizer steps)")
    severity = "error" if only_after else ("info" if trailing_only or nothing_held_out else "warning")
    if rank_alone is not None:
        severity = "info"
        message += (f" (rank {rank_alone}'s own epochs: another rank may have evaluated them; the merged "
                    "report counts an epoch as evaluated when any rank evaluated it)")
    return Finding(
        code="eval/missing-epochs",
        severity=severity,
        message=message + ".",
        fix=(NOTHING_HELD_OUT_FIX if nothing_held_out else "") + (facts.framework_fix or CADENCE_FIX),
        evidence={
            "missing_epochs": missing[:EVIDENCE_CAP],
            "missing_count": len(missing),
            "missing_ranges": ranges,
            "epochs": total,
            "evaluated_epochs": evaluated[:EVIDENCE_CAP],
            "eval_every": rule.every,
            "eval_every_source": facts.cadence_source or "eval_every",
            "epoch_source": facts.epoch_source,
            "epoch_end_steps": facts.epoch_end_steps[:EVIDENCE_CAP],
            "eval_steps": facts.eval_steps[:EVIDENCE_CAP],
            "steps": steps,
            "only_after_training": only_after,
            "no_evaluation": never,
            "held_out_data": facts.held_out[:20],
            "final": final,
        },
        where=facts.where,
        key="epochs",
    )


STEP_RUN_FIX = ("Evaluate periodically while training (e.g. `if step % eval_interval == 0: estimate_loss()` "
                "inside the loop), or mark epochs with `watchdog.mark_epoch()` so cadence is judged per epoch.")


def step_based_finding(steps: int, eval_steps: list[int], *, scope: str = "",
                       rank_alone: int | None = None) -> Finding | None:
    """The rule for loops without epochs (or with a single one), on a completed run of ``steps``
    optimizer steps whose evaluations ran at ``eval_steps``: ``eval/only-at-end`` or ``eval/never``,
    or None (evaluated during training, or too short to judge). ``scope`` and ``rank_alone`` as in
    :func:`missing_epochs_finding`."""
    during = [s for s in eval_steps if 0 < s < steps]
    if during or steps < STEP_RUN_MIN_STEPS:
        return None
    after = [s for s in eval_steps if s >= steps]
    before = [s for s in eval_steps if s == 0]
    evidence = {"steps": steps, "eval_steps": sorted(set(eval_steps))[:EVIDENCE_CAP],
                "evaluated_before_training": bool(before), "min_steps_judged": STEP_RUN_MIN_STEPS}
    note = ""
    if rank_alone is not None:
        note = (f" (rank {rank_alone} alone: another rank may have evaluated; the merged report counts "
                "evaluation on any rank)")
    if after:
        return Finding(
            code="eval/only-at-end",
            severity="info" if rank_alone is not None else "error",
            message=f"{steps} optimizer steps ran with no evaluation{scope} during training; the only "
                    f"evaluation ran after the last step"
                    + (" (and once before the first)" if before else "") + f", so no metric watched the run{note}.",
            fix=STEP_RUN_FIX, evidence=evidence, key="steps",
        )
    return Finding(
        code="eval/never",
        severity="info" if rank_alone is not None else "warning",
        message=f"{steps} optimizer steps ran and the model was never evaluated{scope} during or after "
                "training" + (" (only once, before the first step)" if before else "") + f"{note}.",
        fix=STEP_RUN_FIX, evidence=evidence, key="steps",
    )
