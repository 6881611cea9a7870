"""Memory sources: RSS for real; the CUDA allocator and NVML against fakes (no GPU in CI), and the
check's CUDA findings (growth with projection, fragmentation) fed with fake allocator counters."""

from __future__ import annotations

import threading
import time

import psutil
import pytest

import watchdog
from watchdog.memory.growth import MB
from watchdog.memory.sources import (
    CudaAllocatorReader,
    CudaMemory,
    NvmlReader,
    RssReader,
    normalise_uuid,
)

GB = 1024 * MB


# -- RSS ---------------------------------------------------------------------------------------------
def test_rss_reader_agrees_with_psutil():
    reader = RssReader()
    try:
        ours = reader.read()
        theirs = psutil.Process().memory_info().rss
        assert ours is not None and abs(ours - theirs) < 64 * MB
    finally:
        reader.close()
    assert reader.read() is None  # closed: "unavailable", never an error


def test_rss_reader_without_proc_falls_back_to_psutil(tmp_path):
    reader = RssReader(statm_path=str(tmp_path / "missing"))
    assert reader.available
    assert reader.read() > 0


# -- CUDA allocator (fake torch.cuda) -----------------------------------------------------------------
def _nested(allocated, reserved, *, active=None, inactive=0, peak=None, retries=0, ooms=0):
    def counter(current, peak_value=None):
        return {"all": {"current": current, "peak": peak_value if peak_value is not None else current,
                        "allocated": 0, "freed": 0}}

    return {
        "allocated_bytes": counter(allocated, peak),
        "reserved_bytes": counter(reserved),
        "active_bytes": counter(active if active is not None else allocated),
        "inactive_split_bytes": counter(inactive),
        "num_alloc_retries": retries,
        "num_ooms": ooms,
    }


class FakeProps:
    def __init__(self, total, uuid):
        self.total_memory = total
        self.uuid = uuid


class FakeCuda:
    """What CudaAllocatorReader uses of torch.cuda; records calls."""

    def __init__(self, stats, initialized=True, uuids=None):
        self.stats = stats  # device -> nested dict (or an exception to raise)
        self.initialized = initialized
        self.uuids = uuids or {}
        self.calls = []

    def is_initialized(self):
        return self.initialized

    def device_count(self):
        return len(self.stats)

    def memory_stats_as_nested_dict(self, device=None):
        self.calls.append(("stats", device))
        assert device is not None  # device=None would mean "the calling thread's device"
        value = self.stats[device]
        if isinstance(value, Exception):
            raise value
        return value

    def get_device_properties(self, device):
        self.calls.append(("props", device))
        return FakeProps(80 * GB, self.uuids.get(device, f"0000000{device}-aaaa-bbbb-cccc-dddddddddddd"))

    def mem_get_info(self, *a, **k):  # must never be called: it creates a context on GPU 0
        raise AssertionError("mem_get_info called")


def test_cuda_reader_reads_nothing_unless_the_program_initialised_cuda():
    fake = FakeCuda({0: _nested(1, 2)}, initialized=False)
    reader = CudaAllocatorReader(fake)
    assert reader.read() == [] and reader.uuids() == {}
    assert fake.calls == []


def test_cuda_reader_parses_counters_per_device_and_skips_unused_and_broken():
    fake = FakeCuda({
        0: _nested(3 * GB, 5 * GB, inactive=512 * MB, peak=4 * GB, retries=2, ooms=1),
        1: _nested(0, 0),
        2: RuntimeError("driver hiccup"),
    })
    (mem,) = CudaAllocatorReader(fake).read()
    assert mem.device == 0
    assert (mem.allocated, mem.reserved, mem.inactive_split, mem.peak_allocated) == (3 * GB, 5 * GB, 512 * MB, 4 * GB)
    assert (mem.num_alloc_retries, mem.num_ooms, mem.total) == (2, 1, 80 * GB)
    assert mem.reserved_unallocated == 2 * GB
    assert ("stats", None) not in fake.calls


def test_uuids_are_normalised_for_matching():
    assert normalise_uuid("GPU-58D5EC7C-1111-2222-3333-444444444444") == "58d5ec7c-1111-2222-3333-444444444444"
    assert normalise_uuid(b"GPU-abc") == "abc"
    assert normalise_uuid("58d5ec7c-1111") == "58d5ec7c-1111"


# -- NVML (fake pynvml) -------------------------------------------------------------------------------
class NVMLError_LibraryNotFound(Exception):
    pass


class FakeMemInfo:
    def __init__(self, used, total):
        self.used, self.total = used, total


class FakeNvml:
    def __init__(self, uuids, used, *, fail=None, gate=None):
        self._uuids = uuids  # nvml index -> "GPU-..." uuid
        self._used = used  # nvml index -> used bytes
        self.fail = fail
        self.gate = gate
        self.init_calls = 0
        self.init_thread = None

    def nvmlInit(self):
        self.init_calls += 1
        self.init_thread = threading.current_thread()
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail is not None:
            raise self.fail

    def nvmlDeviceGetCount(self):
        return len(self._uuids)

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("handle", index)

    def nvmlDeviceGetUUID(self, handle):
        return self._uuids[handle[1]]

    def nvmlDeviceGetMemoryInfo(self, handle):
        return FakeMemInfo(self._used[handle[1]], 80 * GB)


def test_nvml_initialises_off_the_calling_thread_and_maps_devices_by_uuid(monkeypatch):
    # CUDA_VISIBLE_DEVICES=1: torch's cuda:0 is NVML's device 1.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    fake = FakeNvml({0: "GPU-aaaa", 1: "GPU-bbbb"}, {0: 1 * GB, 1: 7 * GB})
    reader = NvmlReader(load=lambda: fake)
    assert reader.read({0: "bbbb"}) is None  # not started: nothing, no init on this thread
    reader.start()
    assert reader.wait(5) == "ready"
    assert fake.init_thread is not threading.current_thread()
    (mem,) = reader.read({0: normalise_uuid("bbbb")})
    assert (mem.device, mem.used, mem.total) == (0, 7 * GB, 80 * GB)
    # Without UUIDs, indices are not trusted while CUDA_VISIBLE_DEVICES remaps them.
    assert reader.read({}) == []
    reader.start()  # idempotent: init once
    assert fake.init_calls == 1


def test_nvml_missing_library_is_a_quiet_unavailable():
    fake = FakeNvml({}, {}, fail=NVMLError_LibraryNotFound("NVML Shared Library Not Found"))
    reader = NvmlReader(load=lambda: fake)
    reader.start()
    assert reader.wait(5) == "unavailable"
    assert "LibraryNotFound" in reader.reason
    assert reader.read({0: "x"}) is None
    reader.start()
    assert fake.init_calls == 1  # failure remembered, never retried


def test_nvml_import_failure_is_unavailable():
    def load():
        raise ImportError("No module named 'pynvml'")

    reader = NvmlReader(load=load)
    reader.start()
    assert reader.wait(5) == "unavailable"


def test_nvml_hanging_init_never_blocks_the_caller():
    gate = threading.Event()
    fake = FakeNvml({0: "GPU-a"}, {0: GB}, gate=gate)
    reader = NvmlReader(load=lambda: fake)
    reader.start()  # returns at once although nvmlInit blocks
    assert reader.state == "starting"
    assert reader.read({0: "a"}) is None
    gate.set()
    assert reader.wait(5) == "ready"


def test_real_nvml_on_this_machine_answers_quickly():
    """With nvidia-ml-py installed and no driver (CI), the real reader ends 'unavailable'; on a GPU
    machine it ends 'ready'. Either way it never raises."""
    reader = NvmlReader()
    reader.start()
    state = reader.wait(30)
    assert state in ("ready", "unavailable")


# -- the check's CUDA findings, from fake allocator counters ------------------------------------------
def _feed(run, epochs):
    """Emits epoch-end memory samples as the probe would, with fake CUDA counters."""
    for epoch, mem in enumerate(epochs, start=1):
        run.emit("memory_sample", {"at": "epoch_end", "epoch": epoch, "steps": epoch * 100, "rss": None,
                                   "cuda": [mem.to_dict()]}, {"census": None, "diff": None, "cuda": {0: mem}})


def _mem(allocated, reserved, inactive=0, retries=0):
    return CudaMemory(device=0, allocated=allocated, reserved=reserved, active=allocated,
                      inactive_split=inactive, peak_allocated=allocated, num_alloc_retries=retries,
                      num_ooms=0, total=80 * GB)


def test_cuda_growth_reported_with_rate_and_when_the_device_runs_out(tmp_path):
    base = 2 * GB
    with watchdog.watch(report_dir=tmp_path, dashboard=False, summary=False) as run:
        _feed(run, [_mem(base + i * 21 * MB, base + i * 21 * MB + 256 * MB) for i in range(4)])
    (f,) = [f for f in run.findings if f.code.startswith("memory/")]
    assert f.code == "memory/cuda-growth" and f.key == "cuda:0"
    assert "+21.0 MiB/epoch" in f.message
    # (80 GB - 2.06 GB) / 21 MB per epoch ≈ 3,800 epochs after epoch 4.
    assert 3_700 <= f.evidence["runs_out_near_epoch"] <= 3_900
    assert "runs out near epoch 3," in f.message


def test_steady_cuda_memory_is_silent(tmp_path):
    with watchdog.watch(report_dir=tmp_path, dashboard=False, summary=False) as run:
        _feed(run, [_mem(2 * GB + (i % 2) * 300 * MB, 3 * GB) for i in range(8)])
    assert [f for f in run.findings if f.code.startswith("memory/")] == []


def test_growing_reserved_gap_is_fragmentation_with_expandable_segments_advice(tmp_path):
    with watchdog.watch(report_dir=tmp_path, dashboard=False, summary=False) as run:
        _feed(run, [_mem(10 * GB, 12 * GB + i * 400 * MB, inactive=i * 300 * MB) for i in range(5)])
    (f,) = [f for f in run.findings if f.code.startswith("memory/")]
    assert f.code == "memory/fragmentation"
    assert "expandable_segments:True" in f.fix
    assert "empty_cache()" in f.fix and "Do not call" in f.fix


def test_allocation_retries_with_a_large_gap_are_fragmentation(tmp_path):
    with watchdog.watch(report_dir=tmp_path, dashboard=False, summary=False) as run:
        _feed(run, [_mem(10 * GB, 16 * GB, retries=0), _mem(10 * GB, 16 * GB, retries=3)])
    (f,) = [f for f in run.findings if f.code.startswith("memory/")]
    assert f.code == "memory/fragmentation" and f.evidence["retries_this_epoch"] == 3


def test_probe_reads_fake_cuda_at_epoch_marks_and_reports_growth_with_epoch_peaks(tmp_path):
    stats = {0: _nested(1 * GB, 2 * GB, peak=1 * GB)}
    fake = FakeCuda(stats)
    with watchdog.watch(report_dir=tmp_path, dashboard=False, summary=False) as run:
        (probe,) = [p for p in run.probes if p.name == "memory"]
        probe.cuda = CudaAllocatorReader(fake)
        probe.nvml = NvmlReader(load=lambda: FakeNvml({0: "GPU-00000000-aaaa-bbbb-cccc-dddddddddddd"}, {0: 3 * GB}))
        for epoch in range(5):
            allocated = 1 * GB + epoch * 50 * MB
            stats[0] = _nested(allocated, 2 * GB + epoch * 50 * MB, peak=allocated + (100 * MB if epoch == 2 else 0))
            watchdog.mark_epoch()
    assert all(call[1] is not None for call in fake.calls)
    codes = [f.code for f in run.findings if f.code.startswith("memory/")]
    assert "memory/cuda-growth" in codes
    import json

    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    samples = [e["data"] for e in events if e["kind"] == "memory_sample" and e["data"]["at"] == "epoch_end"]
    assert len(samples) == 5
    peaks = [s["cuda"][0]["epoch_peak"] for s in samples]
    assert peaks[2] == 1 * GB + 200 * MB  # the allocator's peak rose during that epoch
    assert peaks[3] == 1 * GB + 150 * MB  # it did not: the epoch's own level


def _feed_epochs(run, rss, counts):
    for epoch, (r, c) in enumerate(zip(rss, counts), start=1):
        run.emit("memory_sample", {"at": "epoch_end", "epoch": epoch, "steps": epoch * 100, "rss": r, "cuda": [],
                                   "census": {"count": c, "bytes": c * 1000, "graph_count": 0}},
                 {"census": None, "diff": None, "cuda": {}})


def test_rss_growth_with_flat_tensors_is_reported_as_memory_outside_tensors(tmp_path):
    rss = [900 * MB + i * 38 * MB for i in range(5)]
    with watchdog.watch(report_dir=tmp_path, dashboard=False, summary=False) as run:
        _feed_epochs(run, rss, [500] * 5)
    (f,) = [f for f in run.findings if f.code.startswith("memory/")]
    assert f.code == "memory/rss-growth"
    assert "+38.0 MiB/epoch" in f.message and "outside tensors" in f.message


def test_rss_growth_alongside_tensor_growth_is_left_to_the_tensor_finding(tmp_path):
    rss = [900 * MB + i * 38 * MB for i in range(5)]
    with watchdog.watch(report_dir=tmp_path, dashboard=False, summary=False) as run:
        _feed_epochs(run, rss, [500 + i * 400 for i in range(5)])
    codes = [f.code for f in run.findings if f.code.startswith("memory/")]
    assert codes == ["memory/tensor-growth"]


def test_cuda_floor_rising_within_a_long_epoch_is_an_early_warning(tmp_path):
    with watchdog.watch(report_dir=tmp_path, dashboard=False, summary=False) as run:
        watchdog.mark_epoch()  # epoch 1 done: from epoch 2 on it is a warning
        for step in range(0, 400, 4):
            # activations come and go (+0..3 GB) on top of a floor that rises 2 MB a step
            allocated = 10 * GB + step * 2 * MB + (step % 12) * 256 * MB
            run.emit("memory_sample", {"at": "sampler", "epoch": 1, "steps": step, "rss": None,
                                       "cuda": [{"device": 0, "allocated": allocated, "reserved": 20 * GB}]})
    (f,) = [f for f in run.findings if f.code == "memory/growth-within-epoch"]
    assert f.key == "cuda:0" and f.severity == "warning"
    assert 1.5 * MB <= f.evidence["bytes_per_step"] <= 2.5 * MB


def test_cuda_growth_that_runs_out_within_100_epochs_is_an_error(tmp_path):
    with watchdog.watch(report_dir=tmp_path, dashboard=False, summary=False) as run:
        _feed(run, [_mem(10 * GB + i * GB, 12 * GB + i * GB) for i in range(4)])
    (f,) = [f for f in run.findings if f.code.startswith("memory/")]
    assert f.code == "memory/cuda-growth" and f.severity == "error"
    # (80 - 13) GB at 1 GB an epoch after the end of epoch 3 (the fourth sample), from 0 as the message says
    assert f.evidence["runs_out_near_epoch"] == 3 + 67 and "runs out near epoch 70" in f.message
    assert (f.evidence["epoch"], f.evidence["baseline_epoch"]) == (3, 0)
