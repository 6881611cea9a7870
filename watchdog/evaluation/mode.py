"""Train/eval mode mix-ups: training in eval mode, evaluating in train mode, evaluating with grad on.

Only modules whose computation depends on ``module.training`` matter (``eval_common.mode_dependent_kind``:
dropout, batch norm, instance norm with running stats, attention/RNN dropout, classes overriding
``train()``); a model without any is never flagged, whatever its mode.

- ``eval/train-in-eval-mode`` (error): an optimizer stepped a model whose **root** module was in eval
  mode while it holds mode-dependent submodules in eval mode (the classic ``evaluate()`` that calls
  ``model.eval()`` and a loop that never calls ``model.train()`` again). The rule for deliberate
  freezing: a submodule in eval mode inside a root in train mode (frozen batch norm) is the user's
  choice and never flagged; only a root in eval mode is. The mode is sampled at step alarms, never
  per step: at the first step of the run, of every epoch and after every DataLoader pass starts, at
  steps 2, 4, 8, ... 1024 and then every 1024 steps.
- ``eval/eval-in-train-mode`` (warning): an evaluation DataLoader pass whose forwards ran with the
  model in train mode, or forwards of a trained model under ``no_grad`` outside any DataLoader pass
  in train mode, while it has active dropout / batch norm (batch norm then also updates its running
  statistics with evaluation data). ``no_grad`` forwards outside passes at more than half of all
  optimizer steps are part of the training step (targets, pseudo-labels), not evaluation.
- ``eval/grad-enabled`` (info): an evaluation DataLoader pass whose forwards ran with autograd on
  (memory and time spent on graphs nobody uses). Only judged on DataLoader passes: outside them a
  grad-enabled forward in eval mode cannot be told apart from training.
"""

from __future__ import annotations

from typing import Any

from ..core.findings import Finding
from ..core.frames import user_frames
from ..core.check import Check
from .common import TrainedModels, at_step, describe_modules, mode_dependent_modules, model_prefix

DENSE_ALARMS_UNTIL = 1024  # steps 1, 2, 4, ... up to this, then every this many steps
EVIDENCE_MODULES = 50
PART_OF_STEP_MIN_STEPS = 10


def _next_alarm(step: int) -> int:
    if step < DENSE_ALARMS_UNTIL:
        power = 1
        while power <= step:
            power *= 2
        return power
    return (step // DENSE_ALARMS_UNTIL + 1) * DENSE_ALARMS_UNTIL


def _module_evidence(modules: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"path": path, "kind": kind} for path, kind in modules[:EVIDENCE_MODULES]]


class EvalModeCheck(Check):
    name = "eval-mode"

    def __init__(self, run: Any):
        super().__init__(run)
        self.trained = TrainedModels(run)
        self.scheduled = False
        self.eval_mode_training: dict[int, dict[str, Any]] = {}  # model id -> evidence so far
        self.train_mode_eval: dict[str, dict[str, Any]] = {}
        self.grad_enabled: dict[str, dict[str, Any]] = {}
        self.outside_seen: dict[int, int] = {}  # model id -> train-mode nograd forwards already judged

    # -- training in eval mode (step alarms) ------------------------------------------------------------
    def on_optimizer_first_step(self, event: Any) -> None:
        if self.scheduled:
            return
        self.scheduled = at_step(self, _next_alarm(self.run.loop.steps), self._on_alarm)
        self._sample_mode()

    def on_epoch_end(self, event: Any) -> None:
        if self.scheduled:
            at_step(self, int(event.data["steps"]) + 1, self._sample_mode)  # the next epoch's first step

    def on_loader_pass_start(self, event: Any) -> None:
        if self.scheduled:  # the first step after any pass starts: after evaluation, or a new epoch
            at_step(self, int(event.data.get("step", self.run.loop.steps)) + 1, self._sample_mode)

    def _on_alarm(self) -> None:
        at_step(self, _next_alarm(self.run.loop.steps), self._on_alarm)
        self._sample_mode()
        self._judge_outside_eval()

    def _sample_mode(self) -> None:
        """Called right after an optimizer step: is a root model that this optimizer steps in eval mode?"""
        run = self.run
        for info in self.trained.stepped_by(run.loop.stepping_optimizer):
            root = info.ref()
            if root is None:
                continue
            state = self.eval_mode_training.get(id(info))
            if root.training:
                if state is not None:
                    state["train_mode_seen_at_step"] = run.loop.steps
                continue
            frozen = mode_dependent_modules(root, training=False)
            if not frozen:
                continue  # nothing behaves differently in eval mode
            if state is None:
                frames = user_frames(4)
                state = self.eval_mode_training[id(info)] = {
                    "first_step": run.loop.steps, "first_epoch": run.loop.epoch, "samples_in_eval_mode": 0,
                    "where": frames[0].where if frames else None,
                }
            state["samples_in_eval_mode"] += 1
            state["last_step"] = run.loop.steps
            state.pop("train_mode_seen_at_step", None)
            self._report_train_in_eval(info, frozen, state)

    def _report_train_in_eval(self, info: Any, frozen: list[tuple[str, str]], state: dict[str, Any]) -> None:
        name = model_prefix(info)
        span = (f"from step {state['first_step']} (epoch {state['first_epoch']})"
                + (f" to at least step {state['last_step']}" if state["last_step"] != state["first_step"] else ""))
        kinds = {kind for _, kind in frozen}
        effects = []
        if "dropout" in kinds or "attention dropout" in kinds or "RNN dropout" in kinds:
            effects.append("dropout was off")
        if "batch norm" in kinds or "instance norm" in kinds:
            effects.append("batch norm normalised with frozen running statistics and never updated them")
        effect = ("; ".join(effects) or "they computed as at inference") + "."
        self.report(Finding(
            code="eval/train-in-eval-mode",
            severity="error",
            message=f"The optimizer stepped `{name}` ({info.type_name}) while it was in eval mode, {span}: "
                    f"{describe_modules(frozen, name)} trained in inference behaviour — {effect}",
            fix=f"Call `{name}.train()` at the start of every epoch's training loop (an evaluate() that calls "
                f"`{name}.eval()` leaves it in eval mode). To freeze batch norm on purpose, keep `{name}` in "
                "train mode and put only those submodules in eval mode (e.g. `model.bn.eval()`).",
            evidence={
                "model": info.label, "modules_in_eval_mode": _module_evidence(frozen),
                "module_count": len(frozen), **state,
            },
            where=state.get("where"),
            key=f"{name}:{id(info)}",
        ))

    # -- evaluation in train mode / with grad ------------------------------------------------------------
    def on_loader_pass_end(self, event: Any) -> None:
        data = event.data
        if data.get("role") != "eval":
            return
        forwards = int(data.get("forwards", 0))
        if forwards <= 0:
            return
        train_mode = forwards - int(data.get("eval_mode_forwards", 0))
        if train_mode > 0:
            self._eval_in_train_mode_pass(data, train_mode, forwards)
        with_grad = forwards - int(data.get("nograd_forwards", 0))
        if with_grad > 0:
            self._grad_enabled_pass(data, with_grad, forwards)

    def _active_models(self) -> list[tuple[Any, list[tuple[str, str]]]]:
        out = []
        for info in self.trained.infos():
            root = info.ref()
            if root is None or not root.training:
                continue
            active = mode_dependent_modules(root, training=True)
            if active:
                out.append((info, active))
        return out

    def _eval_in_train_mode_pass(self, data: dict[str, Any], train_mode: int, forwards: int) -> None:
        loader = data.get("loader", "an evaluation DataLoader")
        for info, active in self._active_models():
            name = model_prefix(info)
            key = f"{data.get('loader_id')}:{name}:{id(info)}"
            state = self.train_mode_eval.setdefault(key, {"passes": 0, "train_mode_forwards": 0, "forwards": 0})
            state["passes"] += 1
            state["train_mode_forwards"] += train_mode
            state["forwards"] += forwards
            self._report_eval_in_train(info, active, f"evaluation over {loader}", state, key, data.get("where"))

    def _judge_outside_eval(self, final: bool = False) -> None:
        """Forwards under no_grad outside DataLoader passes with the model in train mode (nanoGPT-style eval)."""
        steps = self.run.loop.steps
        if steps < PART_OF_STEP_MIN_STEPS and not final:
            return  # too early to tell evaluation from a per-step no_grad forward
        for info in self.trained.infos():
            count = info.nograd_train_mode_forwards_outside
            if count <= self.outside_seen.get(id(info), 0):
                continue
            self.outside_seen[id(info)] = count
            root = info.ref()
            if root is None:
                continue
            if steps >= PART_OF_STEP_MIN_STEPS and len(info.eval_steps) * 2 > steps:
                continue  # no_grad forwards at most steps: part of the training step (targets, pseudo-labels)
            active = mode_dependent_modules(root, training=True)
            if not active:
                continue
            name = model_prefix(info)
            state = {"train_mode_forwards": count, "forwards": info.nograd_forwards_outside,
                     "eval_steps": info.eval_steps[-20:]}
            self._report_eval_in_train(info, active, "evaluation under no_grad (outside any DataLoader pass)",
                                       state, f"outside:{name}:{id(info)}", None)

    def _report_eval_in_train(self, info: Any, active: list[tuple[str, str]], what: str, state: dict[str, Any],
                              key: str, where: str | None) -> None:
        name = model_prefix(info)
        kinds = {kind for _, kind in active}
        effects = []
        if kinds & {"dropout", "attention dropout", "RNN dropout"}:
            effects.append("dropout randomly zeroed activations, so the metrics are noisy and pessimistic")
        if kinds & {"batch norm", "instance norm"}:
            effects.append("batch norm normalised with evaluation-batch statistics and updated its running "
                           "statistics with evaluation data")
        effect = ("; ".join(effects) or "they computed as in training") + "."
        self.report(Finding(
            code="eval/eval-in-train-mode",
            severity="warning",
            message=f"{state['train_mode_forwards']} of {state['forwards']} forward passes of {what} ran with "
                    f"`{name}` ({info.type_name}) in train mode: {describe_modules(active, name)} were active — "
                    f"{effect}",
            fix=f"Call `{name}.eval()` before evaluating and `{name}.train()` after it "
                "(and wrap the evaluation in `torch.no_grad()`).",
            evidence={"model": info.label, "active_modules": _module_evidence(active),
                      "module_count": len(active), **state},
            where=where,
            key=key,
        ))

    def _grad_enabled_pass(self, data: dict[str, Any], with_grad: int, forwards: int) -> None:
        key = str(data.get("loader_id"))
        state = self.grad_enabled.setdefault(key, {"passes": 0, "grad_forwards": 0, "forwards": 0})
        state["passes"] += 1
        state["grad_forwards"] += with_grad
        state["forwards"] += forwards
        loader = data.get("loader", "an evaluation DataLoader")
        self.report(Finding(
            code="eval/grad-enabled",
            severity="info",
            message=f"Evaluation over {loader} ran {state['grad_forwards']} of {state['forwards']} forward passes "
                    f"with autograd enabled ({state['passes']} pass(es)): every activation was kept for a "
                    "backward that never came, costing memory and time.",
            fix="Wrap evaluation in `with torch.no_grad():` (or `torch.inference_mode()`), or decorate "
                "evaluate() with `@torch.no_grad()`.",
            evidence={"loader": loader, "loader_id": key, **state},
            where=data.get("where"),
            key=key,
        ))

    def finish(self) -> None:
        self._judge_outside_eval(final=True)
