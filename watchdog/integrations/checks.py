"""What only a framework's own hooks show: a restart from a framework checkpoint's weights, and
framework checkpoints that hold the weights alone.

Both are saves and loads ``torch.save`` / ``torch.load`` cannot see: the Hugging Face ``Trainer``
writes and reads model weights through safetensors.

- ``resume/optimizer-not-restored``, ``resume/scheduler-restarted`` (``FrameworkResumeCheck``): the
  model was loaded from a Trainer checkpoint (``from_pretrained("out/checkpoint-500")``: its
  ``trainer_state.json`` beside it) and training starts over at step 0, without
  ``resume_from_checkpoint``: the checkpoint's ``optimizer.pt`` and ``scheduler.pt`` are never
  loaded, so the optimizer's moments and the LR schedule restart. The codes mean what they mean for
  a ``torch.load`` resume (``checkpoint/resume.py``).
- ``checkpoint/weights-only`` (``FrameworkCheckpointCheck``, info, at run end): every checkpoint the
  framework wrote held the model's weights and no optimizer state (``save_only_model=True``), so none
  can resume training.
"""

from __future__ import annotations

import os
from typing import Any

from ..core.check import Check
from ..core.findings import Finding
from ..core.format import fmt_number as fmt
from ..core.frames import user_frames


class FrameworkResumeCheck(Check):
    """Training restarted from a framework checkpoint's weights, its optimizer and scheduler state left behind."""

    name = "framework-resume"

    def __init__(self, run: Any):
        super().__init__(run)
        self.judged: set[str] = set()

    def on_framework_trainer(self, event: Any) -> None:
        resumed = event.data.get("resumed_from")
        if not resumed or resumed.get("path") in self.judged:
            return
        path = str(resumed["path"])
        self.judged.add(path)
        files = resumed.get("files") or []
        frames = user_frames(4)
        where = frames[0].where if frames else None
        step, epoch = resumed.get("global_step"), resumed.get("epoch")
        progress = f"global step {fmt(step)}" + (f", epoch {fmt(epoch)}" if epoch is not None else "")
        name = os.path.basename(path.rstrip(os.sep)) or path
        fix = (f"Resume with the Trainer: `trainer.train(resume_from_checkpoint={path!r})` restores the weights, "
               "the optimizer, the LR schedule, the RNG and the step count. To fine-tune from these weights on "
               "purpose, save them with `save_pretrained` into a directory of their own.")
        evidence = {"checkpoint": path, "files": files, "global_step": step, "epoch": epoch,
                    "framework": event.data.get("framework")}
        if "optimizer.pt" in files:
            self.report(Finding(
                code="resume/optimizer-not-restored",
                severity="error",
                message=(f"The model's weights come from the Trainer checkpoint {name} ({progress}), but training "
                         f"starts over at step 0 without resume_from_checkpoint: its optimizer.pt is never loaded, "
                         f"so the optimizer's moments restart from zero."),
                fix=fix, evidence=evidence, where=where, key=f"framework:{path}",
            ))
        if "scheduler.pt" in files and isinstance(step, int) and step > 1:
            self.report(Finding(
                code="resume/scheduler-restarted",
                severity="error",
                message=(f"The LR schedule restarts from step 0 although the weights come from {name}, saved at "
                         f"{progress}: its scheduler.pt is never loaded, so the LR warms up and decays again."),
                fix=fix, evidence=evidence, where=where, key=f"framework:{path}",
            ))


class FrameworkCheckpointCheck(Check):
    """Framework checkpoints that hold model weights and no optimizer state (none can resume training)."""

    name = "framework-checkpoints"

    def __init__(self, run: Any):
        super().__init__(run)
        self.weights_only: list[str] = []
        self.resumable = 0
        self.setting: str | None = None

    def on_framework_checkpoint(self, event: Any) -> None:
        holds = event.data.get("holds") or {}
        if holds.get("optimizer"):
            self.resumable += 1
        elif holds.get("weights"):
            self.weights_only.append(os.path.basename(str(event.data.get("dir", "")).rstrip(os.sep)))
            self.setting = event.data.get("setting") or self.setting

    def finish(self) -> None:
        if not self.weights_only or self.resumable:
            return
        shown = ", ".join(self.weights_only[:3]) + (" ..." if len(self.weights_only) > 3 else "")
        because = f" ({self.setting})" if self.setting else ""
        self.report(Finding(
            code="checkpoint/weights-only",
            severity="info",
            message=(f"No checkpoint of this run can resume training: {len(self.weights_only)} checkpoint(s) held "
                     f"the model's weights only{because}: {shown}; none held the optimizer's or the LR "
                     f"scheduler's state. That is right for exports; to resume after a crash, the optimizer "
                     f"state must be saved too."),
            fix="Save full checkpoints (`save_only_model=False`, the default) at least for the latest one, e.g. "
                "with `save_total_limit` to bound the disk they take.",
            evidence={"checkpoints": self.weights_only[:20], "setting": self.setting},
            key="weights-only",
        ))
