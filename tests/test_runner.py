"""Benchmark jobs in real processes: timeouts, crashes, errors, kills, the zygote's preload
and exit, and one real success."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_plugin_dist, pythonpath_env
from hwaccel.running.jobs import JobPool
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
    "probe": """\
    probe = request.hardware.details["probe"]
    with open(probe + ".tmp", "w") as out:
        out.write(" ".join(m for m in ("pytest", "torch") if m in sys.modules))
    os.replace(probe + ".tmp", probe)
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


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    """Wait until ``path`` exists, failing if ``proc`` ends first (or after a minute)."""
    deadline = time.monotonic() + 60
    while not path.is_file():
        assert proc.poll() is None, f"the zygote ended with {proc.returncode} first"
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def test_closing_stdin_kills_the_jobs_and_the_zygote_leaves_with_os_exit(with_plugins,
                                                                        tmp_path):
    pidfile, atexit_ran = tmp_path / "pids", tmp_path / "atexit-ran"
    # the zygote as the job pool starts it (preloading torch and transformers), with an
    # atexit handler that only the interpreter's normal shutdown would run
    start = (f"import atexit, runpy, sys; atexit.register(open, {str(atexit_ran)!r}, 'w'); "
             "sys.argv = ['zygote', 'benchmark']; "
             "runpy.run_module('hwaccel.running.zygote', run_name='__main__')")
    zygote = subprocess.Popen([sys.executable, "-c", start], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    request = request_for("sleepy", pidfile=str(pidfile))
    job = {"kind": "benchmark", "payload": request.to_dict(), "cpus": None,
           "result": str(tmp_path / "result.json"), "log": str(tmp_path / "log.txt")}
    zygote.stdin.write((json.dumps(job) + "\n").encode())
    zygote.stdin.flush()
    assert "started" in json.loads(zygote.stdout.readline())
    wait_for(pidfile, zygote)
    worker, grandchild = (int(p) for p in pidfile.read_text().split())
    zygote.stdin.close()
    assert zygote.wait(timeout=60) == 0
    assert zygote.stdout.read() == b"", "the job that was killed is not reported as exited"
    assert not atexit_ran.exists(), "the zygote went through the interpreter's shutdown"
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)  # killed and reaped by the zygote before it left
    deadline = time.monotonic() + 5
    while not process_gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(grandchild), "the job's own child process survived the zygote"


def test_the_zygote_preloads_pytest_only_for_a_pool_that_runs_tests(with_plugins, tmp_path):
    def preloaded(pool: JobPool, probe: Path) -> list[str]:
        request = request_for("probe", probe=str(probe))
        pool.run("benchmark", request.to_dict(), timeout_s=120)
        return probe.read_text().split()

    test_file = tmp_path / "test_generated.py"
    test_file.write_text("def test_pytest_runs():\n    assert 1 + 1 == 2\n")
    with JobPool(kinds=("benchmark",)) as pool:
        assert preloaded(pool, tmp_path / "benchmark-pool") == ["torch"]
        # a kind the pool did not name still runs: its child imports pytest itself
        outcome = pool.run("test", {"path": str(test_file)}, timeout_s=120)
        assert outcome.status == "ok", outcome.message
        assert (outcome.result["status"], outcome.result["passed"]) == ("passed", 1)
    with JobPool() as pool:  # every kind: the matrix's pool, which runs generated tests
        assert preloaded(pool, tmp_path / "test-pool") == ["pytest", "torch"]


def test_a_pool_refuses_an_unknown_job_kind():
    with pytest.raises(ValueError, match="unknown job kind.*bench"):
        JobPool(kinds=("bench",))


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
