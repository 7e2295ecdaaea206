"""The ResourcePool: one instance per (model, device), placement, accounting, eviction.

GPUs are absent here: multi-GPU placement is tested with detection records of two GPUs and
models whose parameters live on the meta device (their size counts, no memory is used).
``Module.to`` is the boundary to CUDA; the test model records where it was sent.
"""

from __future__ import annotations

import threading
import time

import pytest

from conftest import cpu_record, cuda_records, detection_of
from hwaccel.compat.resource_pool import ResourcePool, get_global_resource_pool, module_bytes
from hwaccel.errors import UsageError
from hwaccel.hardware.devices import HardwareDetector

MIB = 2**20


class Placed:
    """A model of ``mib`` MiB of fp32 parameters on the meta device that records ``to``."""

    def __new__(cls, mib: float):
        import torch

        class Model(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.weight = torch.nn.Parameter(torch.empty(int(mib * MIB / 4),
                                                             device="meta"))
                self.sent_to: list[str] = []

            def to(self, device):  # the boundary: this machine cannot move anything to CUDA
                self.sent_to.append(str(device))
                return self

        return Model()


def _pool(*hardware, **options) -> ResourcePool:
    return ResourcePool(detector=HardwareDetector(detection_of(cpu_record(), *hardware)),
                        **options)


def test_32_threads_asking_for_one_model_construct_it_once_and_share_it():
    import torch

    pool = _pool()
    calls = []
    lock = threading.Lock()
    start = threading.Barrier(32)

    def construct():
        with lock:
            calls.append(threading.get_ident())
        time.sleep(0.3)  # every other thread asks while the first one builds
        return torch.nn.Linear(64, 64)

    got = [None] * 32

    def ask(i: int) -> None:
        start.wait()
        got[i] = pool.get_model("embedding", "shared-model", constructor=construct)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len({id(model) for model in got}) == 1 and got[0] is not None
    stats = pool.stats()
    assert (stats["constructions"], stats["models"], stats["misses"]) == (1, 1, 1)
    assert stats["hits"] == 31
    assert stats["memory_mb"] == {"cpu": pytest.approx(module_bytes(got[0]) / MIB, abs=1e-3)}


def test_a_failed_construction_reaches_every_waiter_and_the_next_call_retries():
    pool = _pool()
    attempts = []

    def broken():
        attempts.append(1)
        time.sleep(0.2)
        raise RuntimeError("checkpoint is corrupt")

    errors = []

    def ask() -> None:
        try:
            pool.get_model(None, "flaky", constructor=broken)
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == ["checkpoint is corrupt"] * 4 and len(attempts) == 1
    assert pool.get_model(None, "flaky", constructor=lambda: "recovered") == "recovered"
    (error,) = pool.stats()["errors"]
    assert error["error_type"] == "resource_pool_construction"
    assert "checkpoint is corrupt" in error["message"]


def test_models_spread_over_gpus_by_preferred_index_then_free_memory():
    pool = _pool(*cuda_records([1000, 3000]))
    first = pool.get_model("text_generation", "a", lambda: Placed(800),
                           {"device": "cuda", "preferred_index": 0})
    second = pool.get_model("vision", "b", lambda: Placed(800),
                            {"priority_list": ["cuda", "cpu"], "preferred_index": 0})
    third = pool.get_model("vision", "c", lambda: Placed(2500), {"device": "cuda:1"})
    fourth = pool.get_model("vision", "d", lambda: Placed(100), {"device": "cuda"})
    assert (first.sent_to, second.sent_to, third.sent_to) == (["cuda:0"], ["cuda:1"], [])
    assert fourth.sent_to == ["cuda:1"]  # the GPU with the most free memory left
    stats = pool.stats()
    assert stats["memory_mb"] == {"cuda:0": pytest.approx(800), "cuda:1": pytest.approx(900),
                                  "cpu": pytest.approx(2500)}
    notes = {f["name"]: f["reason"] for f in stats["fallbacks"]}
    assert notes["b"] == "cuda:0 cannot hold 800 MiB; placed on cuda:1"
    assert notes["c"].startswith("2,500 MiB does not fit any cuda device (cuda:0 200 MiB free, "
                                 "cuda:1 2,200 MiB free): kept on the CPU")
    # asked again on the device it fell back from, the same instance comes back
    assert pool.get_model("vision", "c", lambda: Placed(1), {"device": "cuda:1"}) is third


def test_the_same_model_on_two_devices_is_two_instances():
    pool = _pool(*cuda_records([4000]))
    on_gpu = pool.get_model(None, "m", lambda: Placed(10), {"device": "cuda"})
    on_cpu = pool.get_model(None, "m", lambda: Placed(10), {"device": "cpu"})
    assert on_gpu is not on_cpu and on_gpu.sent_to == ["cuda:0"] and on_cpu.sent_to == []
    assert pool.stats()["models"] == 2


def test_a_backend_that_is_not_a_torch_device_keeps_the_model_on_the_cpu():
    converting = cpu_record(backend="openvino", device="CPU", plugin="openvino")
    pool = _pool(converting)
    model = pool.get_model(None, "m", lambda: Placed(1), {"device": "openvino"})
    (fallback,) = pool.stats()["fallbacks"]
    assert model.sent_to == [] and fallback["device"] == "cpu"
    assert "runs converted graphs, not PyTorch modules" in fallback["reason"]


def test_low_memory_mode_evicts_the_least_recently_used_to_stay_under_the_budget():
    pool = _pool(low_memory=True, memory_budget_mb=100)
    pool.get_model(None, "first", lambda: Placed(40))
    pool.get_model(None, "second", lambda: Placed(40))
    pool.get_model(None, "first")  # used again: "second" is now the least recently used
    pool.get_model(None, "third", lambda: Placed(40))
    stats = pool.stats()
    assert sorted(e["name"] for e in stats["entries"]) == ["first", "third"]
    assert [e["name"] for e in stats["evictions"]] == ["second"]
    assert stats["total_memory_mb"] == pytest.approx(80) and stats["memory_budget_mb"] == 100
    pool.get_model(None, "huge", lambda: Placed(150))
    assert [e["name"] for e in pool.stats()["entries"]] == ["huge"]
    assert pool.stats()["errors"][0]["error_type"] == "resource_pool_budget"
    with pytest.raises(UsageError, match="not in the pool and no constructor"):
        pool.get_model(None, "second")


def test_idle_entries_are_dropped_after_the_timeout():
    now = [0.0]
    pool = _pool(idle_timeout_s=60, clock=lambda: now[0])
    pool.get_model(None, "old", lambda: Placed(1))
    now[0] = 30.0
    pool.get_tokenizer("bert", "tok", lambda: object())
    now[0] = 75.0  # "old" idle for 75 s, the tokenizer for 45 s
    pool.get_resource("processor", "p", lambda: object())
    assert sorted(e["name"] for e in pool.stats()["entries"]) == ["p", "tok"]
    assert pool.stats()["expired"] == 1
    now[0] = 500.0
    assert pool.cleanup_unused_resources(max_age_minutes=1) == 2
    assert pool.stats()["resources"] == 0


def test_settings_come_from_the_environment_and_bad_values_are_one_clear_error(monkeypatch):
    monkeypatch.setenv("RESOURCE_POOL_LOW_MEMORY", "1")
    monkeypatch.setenv("RESOURCE_POOL_MAX_MEMORY_MB", "512")
    monkeypatch.setenv("RESOURCE_POOL_TIMEOUT_MINS", "2")
    pool = _pool()
    assert (pool.low_memory, pool.memory_budget_mb, pool.idle_timeout_s) == (True, 512, 120)
    for bad in ("lots", "nan", "-5", "0"):  # NaN passed a plain `<= 0` check
        monkeypatch.setenv("RESOURCE_POOL_MAX_MEMORY_MB", bad)
        with pytest.raises(UsageError, match=f"RESOURCE_POOL_MAX_MEMORY_MB must be a finite "
                                             f"number above 0, not '{bad}'"):
            _ = _pool().memory_budget_mb
    with pytest.raises(UsageError, match="unknown hardware preference gpu"):
        _pool(low_memory=False).get_model(None, "m", lambda: 1, {"gpu": 0})


def test_without_a_budget_low_memory_mode_keeps_within_the_free_host_memory(monkeypatch):
    monkeypatch.delenv("RESOURCE_POOL_MAX_MEMORY_MB", raising=False)
    pool = _pool(low_memory=True)
    assert pool.memory_budget_mb == pytest.approx(12 * 1024)  # the detected free memory


def test_the_global_pool_is_one_object():
    assert get_global_resource_pool() is get_global_resource_pool()
    from hwaccel import get_global_resource_pool as exported

    assert exported() is get_global_resource_pool()
