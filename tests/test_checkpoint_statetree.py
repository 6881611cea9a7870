"""Pure parts of issue 3: what a saved object holds, safe read-back, bitwise compare."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from watchdog.checkpoint.roundtrip import Unverifiable, compare, crc_changes, leaf_crcs, read_back
from watchdog.checkpoint.statetree import inventory


def _trained():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    x = torch.linspace(-1, 1, 12).reshape(4, 3)
    model(x).sum().backward()
    opt.step()
    sched.step()
    return model, opt, sched


def test_plain_dict_with_any_key_names():
    model, opt, sched = _trained()
    scaler = torch.amp.GradScaler("cpu")
    inv = inventory({"ep": 3, "net": model.state_dict(), "o": opt.state_dict(), "lrs": sched.state_dict(),
                     "amp": scaler.state_dict(), "meta": {"global_step": 12, "name": "run"}})
    assert [w.path for w in inv.weights] == ["net"]
    assert inv.weights[0].n_tensors == 4
    (o,) = inv.optimizers
    assert (o.path, o.n_params, o.n_with_state, o.n_tensors, o.kind) == ("o", 4, 4, 8, "Adam moments")
    assert o.steps == 1.0
    (s,) = inv.schedulers
    assert s.path == "lrs" and s.last_epoch == 1 and s.base_lrs == [1e-3]
    assert [x.path for x in inv.scalers] == ["amp"]
    assert {c.path: c.value for c in inv.counters} == {"meta.global_step": 12.0}


def test_lightning_layout_lists():
    model, opt, sched = _trained()
    ckpt = {"epoch": 4, "global_step": 40, "pytorch-lightning_version": "2.4.0", "state_dict": model.state_dict(),
            "loops": {"fit_loop": {"epoch_progress": {"total": {"ready": 4}}}}, "callbacks": {},
            "optimizer_states": [opt.state_dict()], "lr_schedulers": [sched.state_dict()]}
    inv = inventory(ckpt)
    assert [o.path for o in inv.optimizers] == ["optimizer_states[0]"]
    assert [s.path for s in inv.schedulers] == ["lr_schedulers[0]"]
    assert {c.key for c in inv.counters} == {"epoch", "global_step"}
    assert inv.progress() == 40


def test_whole_objects_and_odd_objects():
    model, opt, sched = _trained()
    assert inventory(model).whole_modules[0].module_type == "Sequential"
    assert inventory(opt).optimizers[0].pickled
    for odd in (torch.ones(3), [1, 2, torch.ones(2)], 7, "text", None, {"a": [1, {"b": None}]}, (), {}):
        inv = inventory(odd)
        assert not inv.is_checkpoint and not inv.counters
    loop: list = []
    loop.append(loop)
    assert not inventory(loop).is_checkpoint


def test_read_back_and_bitwise_compare():
    model, opt, sched = _trained()
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "special": torch.tensor([-0.0, float("nan"), float("inf")]), "x": float("nan"), "epoch": 2}
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    loaded = read_back(buf.getvalue())
    assert compare(ckpt, loaded) == ([], 0)  # NaN equals NaN, betas tuple, int state keys
    loaded["special"][0] = 0.0  # -0.0 -> +0.0 is a bit difference
    loaded["optimizer"]["param_groups"][0]["lr"] = 5e-4
    diffs, total = compare(ckpt, loaded)
    assert total == 2
    assert {d.path for d in diffs} == {"special", "optimizer.param_groups[0].lr"}
    assert "1 of 3 elements differ" in next(d.detail for d in diffs if d.path == "special")
    del loaded["epoch"]
    assert any(d.what == "missing" and d.path == "epoch" for d in compare(ckpt, loaded)[0])


def test_read_back_refuses_arbitrary_pickles():
    model, _, _ = _trained()
    buf = io.BytesIO()
    torch.save(model, buf)
    result = read_back(buf.getvalue())
    assert isinstance(result, Unverifiable)
    assert "Sequential" in result.why


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.bool,
                                   torch.complex64, torch.complex128])
def test_compare_every_dtype(dtype):
    t = torch.arange(6).reshape(2, 3).to(dtype)
    buf = io.BytesIO()
    torch.save({"t": t}, buf)
    loaded = read_back(buf.getvalue())
    assert compare({"t": t}, loaded)[1] == 0
    assert compare({"t": t}, {"t": t.reshape(3, 2)})[0][0].what == "shape"


def test_leaf_crcs_name_changed_leaves():
    model, opt, _ = _trained()
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    before = leaf_crcs(ckpt)
    changed = {"model": dict(model.state_dict()), "optimizer": opt.state_dict()}
    changed["model"]["0.bias"] = changed["model"]["0.bias"] + 1
    assert crc_changes(before, leaf_crcs(changed)) == ["model.0.bias"]


def test_each_optimizer_s_state_is_named_for_what_it_is():
    """Issue 12: Adadelta's state was called "RMSprop averages"."""
    import torch
    from torch import nn

    from watchdog.checkpoint.statetree import optimizer_kind

    expected = {torch.optim.Adam: "Adam moments", torch.optim.AdamW: "Adam moments",
                torch.optim.Adadelta: "Adadelta averages", torch.optim.RMSprop: "RMSprop averages",
                torch.optim.Adagrad: "Adagrad sums", torch.optim.Adamax: "Adamax moments",
                torch.optim.ASGD: "ASGD averages", torch.optim.Rprop: "Rprop step sizes"}
    for cls, kind in expected.items():
        model = nn.Linear(3, 2)
        opt = cls(model.parameters(), lr=0.01) if cls is not torch.optim.Adadelta else cls(model.parameters())
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
        assert optimizer_kind(opt.state_dict()["state"].values()) == kind, cls.__name__
    sgd = torch.optim.SGD(nn.Linear(3, 2).parameters(), lr=0.1, momentum=0.9)
    sgd.param_groups[0]["params"][0].grad = torch.ones(2, 3)
    sgd.step()
    assert optimizer_kind(sgd.state_dict()["state"].values()) == "momentum buffers"
