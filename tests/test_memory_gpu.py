"""The CUDA and NVML paths for real, on a GPU machine (skipped where torch has no CUDA device)."""

from __future__ import annotations

import pytest
import torch

import watchdog
from watchdog.memory.sources import CudaAllocatorReader, NvmlReader

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_real_allocator_counters_and_nvml_by_uuid():
    x = torch.ones(1024, 1024, device="cuda")  # the program initialises CUDA, not watchdog
    reader = CudaAllocatorReader()
    (mem, *_rest) = reader.read()
    assert mem.allocated >= x.numel() * 4 and mem.reserved >= mem.allocated and mem.total > 0
    nvml = NvmlReader()
    nvml.start()
    assert nvml.wait(60) in ("ready", "unavailable")
    if nvml.state == "ready":
        (dev, *_r) = nvml.read(reader.uuids())
        assert dev.device == 0 and 0 < dev.used <= dev.total


def test_cuda_leak_found_with_the_list_named(tmp_path):
    model = torch.nn.Linear(1024, 1024).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data = torch.utils.data.TensorDataset(torch.randn(2048, 1024), torch.randn(2048, 1024))
    loader = torch.utils.data.DataLoader(data, batch_size=256)  # each kept output: 1 MB, 8 MB an epoch
    kept_outputs = []
    with watchdog.watch(report_dir=tmp_path, dashboard=False, summary=False) as run:
        for _epoch in range(5):
            for x, y in loader:
                out = model(x.cuda())
                loss = torch.nn.functional.mse_loss(out, y.cuda())
                opt.zero_grad()
                loss.backward()
                opt.step()
                kept_outputs.append(out)
    codes = {f.code: f for f in run.findings}
    assert "memory/tensor-growth" in codes and "memory/cuda-growth" in codes
    assert "kept_outputs" in codes["memory/tensor-growth"].message
