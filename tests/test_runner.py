"""Benchmark jobs in real processes: timeouts, crashes, errors, kills, and one real success."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from conftest import make_plugin_dist, pythonpath_env
from hwaccel.running.runner import run_job
from hwaccel.types import BenchmarkRequest, BenchmarkSettings, Classification, HardwareInfo

PLUGIN = '''\
"""A test backend that misbehaves in its benchmark hook."""

from hwaccel import hookimpl

NAME = "@NAME@"


@hookimpl
def hwaccel_benchmark(request):
    if request.hardware.backend != NAME:
        return None
    import os
    import signal
    import subprocess
    import sys
    import time

@BODY@
'''

BODIES = {
    "sleepy": """\
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pidfile = request.hardware.details["pidfile"]
    with open(pidfile + ".tmp", "w") as out:
        out.write(f"{os.getpid()} {child.pid}")
    os.replace(pidfile + ".tmp", pidfile)
    time.sleep(60)
""",
    "crashy": """\
    print("crashy is going down", file=sys.stderr, flush=True)
    os._exit(3)
""",
    "raisy": """\
    raise RuntimeError("boom")
""",
    "vendory": """\
    import json

    json.loads("{ a vendor runtime refusing the graph")
""",
    "killy": """\
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(30)
""",
}


@pytest.fixture(scope="module")
def plugin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One distribution with four misbehaving backend plugins."""
    modules = {f"hwaccel_test_{name}.py": PLUGIN.replace("@NAME@", name).replace("@BODY@", body)
               for name, body in BODIES.items()}
    return make_plugin_dist(tmp_path_factory.mktemp("plugins") / "site", "hwaccel-test-jobs",
                            {name: f"hwaccel_test_{name}" for name in BODIES}, modules)


@pytest.fixture
def with_plugins(plugin_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Job processes started by this test see the test plugins."""
    monkeypatch.setenv("PYTHONPATH", pythonpath_env(plugin_root)["PYTHONPATH"])


def request_for(backend: str, **details: str) -> BenchmarkRequest:
    return BenchmarkRequest(
        model="x",
        hardware=HardwareInfo(backend=backend, device=f"{backend}:0", name=f"Test {backend}",
                              available=True, details=dict(details)),
        classification=Classification(model="x", family="unknown"),
        settings=BenchmarkSettings(batch_size=3, seq_len=7))


def assert_failure(result, request: BenchmarkRequest, category: str) -> None:
    assert result.success is False
    assert result.error_category == category, result.error
    assert result.error and "\n" not in result.error
    assert (result.model, result.backend, result.device) == ("x", request.hardware.backend,
                                                             request.hardware.device)
    assert (result.batch_size, result.seq_len) == (3, 7)
    assert result.p50_ms is None and result.iterations == 0


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie awaiting its reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_timeout_kills_the_job_and_its_children(with_plugins, tmp_path):
    pidfile = tmp_path / "pids"
    request = request_for("sleepy", pidfile=str(pidfile))
    started = time.monotonic()
    result = run_job(request, timeout_s=3)
    elapsed = time.monotonic() - started
    assert_failure(result, request, "timeout")
    # the limit runs from the job's fork: the job's own wall time is the limit plus the
    # kill; the call as a whole also pays the zygote's preload of torch and transformers,
    # whose length depends on the machine's load, but stays far below the job's 60 s sleep
    assert 3 <= result.wall_time_s < 6, result.wall_time_s
    assert elapsed < 40
    assert pidfile.is_file(), "the sleepy plugin never ran"
    worker, grandchild = (int(p) for p in pidfile.read_text().split())
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)  # killed and reaped
    deadline = time.monotonic() + 5
    while not process_gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(grandchild), "the job's own child process survived the timeout"


def test_exit_code_is_a_crash(with_plugins):
    request = request_for("crashy")
    result = run_job(request, timeout_s=60)
    assert_failure(result, request, "crash")
    assert re.search(r"\b3\b", result.error), result.error
    assert "crashy is going down" in result.error  # the last line the job printed


def test_an_exception_of_the_plugins_own_code_is_hwaccels(with_plugins):
    request = request_for("raisy")
    result = run_job(request, timeout_s=60)
    assert_failure(result, request, "harness")
    assert "boom" in result.error


def test_an_exception_raised_in_the_vendors_code_is_the_backends(with_plugins):
    request = request_for("vendory")
    result = run_job(request, timeout_s=60)
    assert_failure(result, request, "backend")
    assert result.error.startswith("JSONDecodeError") and "decoder.py" in result.error


def test_sigkill_is_a_crash(with_plugins):
    request = request_for("killy")
    result = run_job(request, timeout_s=60)
    assert_failure(result, request, "crash")
    assert "SIGKILL" in result.error


def test_no_plugin_for_the_backend(with_plugins):
    request = request_for("nobody")
    result = run_job(request, timeout_s=60)
    assert_failure(result, request, "unsupported")
    assert "nobody" in result.error


@pytest.mark.slow
def test_real_cpu_benchmark_of_a_tiny_model():
    from hwaccel.hardware.detection import detect
    from hwaccel.models.classify import classify
    from hwaccel.plugins import load

    plugins = load()
    cpus = detect(plugins).available("cpu")
    assert cpus, "the cpu backend detected no CPU"
    settings = BenchmarkSettings(batch_size=2, seq_len=8, min_iterations=5, min_seconds=0.05,
                                 warmup=1, threads=1)
    request = BenchmarkRequest(model="tiny:bert", hardware=cpus[0],
                               classification=classify("tiny:bert", plugins).classification,
                               settings=settings)
    result = run_job(request, timeout_s=120)
    assert result.success is True, f"{result.error_category}: {result.error}"
    assert (result.model, result.backend, result.device) == ("tiny:bert", "cpu", "cpu")
    assert result.iterations >= 5
    assert 0 < result.min_ms <= result.p50_ms <= result.p90_ms <= result.p99_ms <= result.max_ms
    assert result.cold_ms > 0 and result.load_time_s > 0
    assert result.peak_rss_mb > result.baseline_rss_mb > 0
    assert {"torch", "python"} <= set(result.versions)
    assert re.fullmatch(r"[0-9a-f]{16}", result.hardware_fingerprint)
    assert result.output_shapes["logits"][:2] == [2, 8]
    assert result.threads == 1
    assert result.wall_time_s > 0
    assert result.plugin == "cpu"
