"""Shared fixtures: an isolated cache and database, the CLI in a subprocess, real test plugins.

Every test session gets its own hwaccel cache folder and an empty Hugging Face cache, so no
test reads the user's files or a model hub. Plugins for tests are real distributions: a
module plus a ``.dist-info`` folder with ``entry_points.txt``, put on ``PYTHONPATH`` of a
subprocess, so they load through the same entry-point machinery as installed ones.

The pipelines' test files share the steps below: the installed plugins loaded once, tiny
models built from their classification, generated test files linted and run, one benchmark
stored in a fresh DuckDB, and torch held to one thread on this shared 2-core machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

SESSION_ENV: dict[str, str] = {}
# torch's threads collapse under load on this shared 2-core machine: one thread each
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
_BASE = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """Point hwaccel and Hugging Face at empty per-session folders before any test runs."""
    base = Path(tempfile.mkdtemp(prefix="hwaccel-session-"))
    config.stash[_BASE] = base
    (base / "hf").mkdir()
    SESSION_ENV.update({
        "HWACCEL_CACHE_DIR": str(base / "cache"),
        "HWACCEL_DB": str(base / "session.duckdb"),
        "HF_HUB_CACHE": str(base / "hf"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    })
    os.environ.update(SESSION_ENV)
    for var in ("HWACCEL_LOAD_PLUGINS", "HWACCEL_DISABLE_PLUGINS", "HWACCEL_STRICT_PLUGINS"):
        os.environ.pop(var, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session folders."""
    base = config.stash.get(_BASE, None)
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hwaccel ARGS`` in a subprocess and return the completed process."""
    return subprocess.run([sys.executable, "-m", "hwaccel", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def make_plugin_dist(root: Path, dist: str, entry_points: dict[str, str],
                     modules: dict[str, str]) -> Path:
    """Create an importable distribution under ``root`` and return ``root``.

    :param dist: the distribution name (``broken-plugin``).
    :param entry_points: entry-point name -> ``module`` in group ``hwaccel``.
    :param modules: module file name (``broken.py``) -> source (dedented).
    """
    root.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (root / name).write_text(textwrap.dedent(source), encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n",
                                   encoding="utf-8")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[hwaccel]\n{lines}\n", encoding="utf-8")
    return root


def pythonpath_env(*roots: Path) -> dict[str, str]:
    """Return an environment that adds ``roots`` to ``PYTHONPATH``."""
    parts = [str(r) for r in roots]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return {"PYTHONPATH": os.pathsep.join(parts)}


@pytest.fixture(scope="module", autouse=True)
def _playwright_stopped_after_each_module() -> Iterator[None]:
    """In-process web pages (the web backend's tests, detection through every plugin) keep
    the process's Playwright driver running, and it marks an asyncio loop as running between
    its calls; stopping it after each module lets later tests use Playwright's sync API."""
    yield
    browser = sys.modules.get("hwaccel_web.browser")
    if browser is not None:
        browser.stop_playwright()


@pytest.fixture
def tmp_db(tmp_path: Path) -> Path:
    """A path for a fresh DuckDB file."""
    return tmp_path / "results.duckdb"


@pytest.fixture(scope="session")
def plugins():
    """The installed plugins, loaded strictly once for the session (a load is read-only)."""
    from hwaccel.plugins import load

    return load(strict=True)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run torch on ``count`` threads inside the block, then restore the previous setting."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run a module's in-process models on one torch thread, then restore the setting."""
    with torch_threads(1):
        yield


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run torch on one thread for the test, then restore the thread count."""
    with torch_threads(1):
        yield


def workload_and_model(spec: str, plugins: Any, *, prepare: bool = False) -> tuple[Any, Any]:
    """Return the workload for ``spec`` as ``plugins`` classify it, and its loaded model.

    :param prepare: call the workload's ``prepare()`` before loading the model.
    """
    from hwaccel.kit.workloads import load_workload
    from hwaccel.models.classify import classify

    workload = load_workload(spec, classify(spec, plugins).classification)
    if prepare:
        workload.prepare()
    return workload, workload.load_model()


def tiny_workloads(model_types: Iterable[str], plugins: Any, *,
                   prepare: bool = False) -> dict[str, tuple[Any, Any, dict[str, Any]]]:
    """Return model type -> (workload, model, inputs at batch 2 and length 8) for tiny models.

    :param prepare: as for :func:`workload_and_model`.
    """
    built = {}
    for model_type in model_types:
        workload, model = workload_and_model(f"tiny:{model_type}", plugins, prepare=prepare)
        built[model_type] = (workload, model, workload.make_inputs(2, 8))
    return built


def run_with_expected_shapes(spec: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Load ``spec``'s workload, run its model once on inputs at batch 2 and length 8, check
    the outputs have the shapes the workload expects; return (workload, inputs, outputs)."""
    from hwaccel.kit.workloads import load_workload

    workload = load_workload(spec)
    inputs = workload.make_inputs(2, 8)
    outputs = workload.forward(workload.load_model(), inputs)
    expected = workload.expected_shapes(inputs)
    assert {name: tuple(outputs[name].shape) for name in expected} == expected
    return workload, inputs, outputs


def assert_same_weights(first: Any, second: Any) -> None:
    """Assert two models hold equal tensors under the same names, in the same order."""
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(),
                                 strict=True):
        assert a.equal(b), name


def generate_and_run(models: Iterable[str], out: Path, *, backend: str = "cpu",
                     env: dict[str, str] | None = None,
                     expect_passed: int | None = None) -> subprocess.CompletedProcess[str]:
    """Generate test files for ``models`` into ``out``, lint them, run them; return the run.

    Asserts what every caller shares: ``hwaccel generate ... --json`` succeeds and lists one
    file per model, each directly in ``out``, and ``out`` holds exactly those files; ruff
    passes; pytest on ``out`` in a subprocess passes and, given ``expect_passed``, reports
    that many passed tests. The user's own lint settings are unknown, so ruff runs with its
    defaults plus pycodestyle, pyflakes, bugbear and pyupgrade at the default line length of
    88. pytest runs with ``-rs``, so the returned output names each skip and its reason;
    callers assert their own skips and extra texts on it.

    :param env: extra environment for generate and the pytest run (``ONE_THREAD``, a
        ``PYTHONPATH`` with test plugins).
    """
    models = list(models)
    env = {**os.environ, **(env or {})}
    proc = run_cli("generate", *models, "--backend", backend, "--out", str(out), "--json",
                   env=env)
    assert proc.returncode == 0, proc.stderr
    files = [Path(f["path"]) for f in json.loads(proc.stdout)]
    assert len(files) == len(models) and all(f.parent == out for f in files), files
    assert sorted(f.name for f in files) == sorted(p.name for p in out.iterdir())
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache",
                           "--select", "E,F,W,B,UP", str(out)], capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout[-3000:]
    if expect_passed is not None:
        assert re.search(rf"(?<![0-9]){expect_passed} passed", run.stdout), run.stdout[-3000:]
    return run


def hardware_rows(db: Path) -> list[dict[str, Any]]:
    """Return every row of ``hardware_results`` in ``db`` as a dict, in insertion order."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as conn:
        cursor = conn.execute("SELECT * FROM hardware_results ORDER BY id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def assert_generated_tests_skip(backend: str, reason: str, tmp_path: Path) -> None:
    """Generate tiny:bert's test for an absent ``backend``; every test skips with ``reason``.

    :param reason: the start of the backend's unavailability reason (after
        ``"<backend> unavailable: "``).
    """
    run = generate_and_run(["tiny:bert"], tmp_path / "generated", backend=backend,
                           env=ONE_THREAD)
    skips = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    expected = f"{backend} unavailable: {reason}"
    assert skips and all(expected in line for line in skips), run.stdout
    assert " passed" not in run.stdout and f"{len(skips)} skipped" in run.stdout


def assert_benchmark_unavailable(backend: str, db: Path, reason: str) -> dict[str, Any]:
    """Benchmark tiny:bert on an absent ``backend``: exit 1, one stored ``unavailable`` row.

    :param reason: text the recorded error must contain. Returns the stored row.
    """
    proc = run_cli("benchmark", "tiny:bert", "--backend", backend, "--db", str(db), "--json",
                   env={**ONE_THREAD, "HWACCEL_CACHE_DIR": str(db.parent / "cache")})
    assert proc.returncode == 1, proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert (result["success"], result["error_category"]) == (False, "unavailable")
    assert result["error"].startswith(f"{backend} is absent: ") and reason in result["error"]
    (row,) = hardware_rows(db)
    assert (row["hardware"], row["success"], row["error_category"]) == (
        backend, False, "unavailable")
    assert row["error"] == result["error"]
    return row


def benchmark_one(model: str, db: Path, *extra: str, backend: str = "cpu",
                  absent_from_stderr: Iterable[str] = ()) -> dict[str, Any]:
    """Benchmark ``model`` into the fresh DuckDB ``db`` with ``--json``; return its stored row.

    Asserts the exit status is 0; the JSON report holds one result, a success; the database
    holds exactly one row, a success, with the report's median; and none of the texts in
    ``absent_from_stderr`` is in the CLI's stderr.

    :param extra: further options (``--batch-size 2``, iteration and warm-up settings).
    """
    proc = run_cli("benchmark", model, "--backend", backend, "--db", str(db), "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    for text in absent_from_stderr:
        assert text not in proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert result["success"] is True, result
    (row,) = hardware_rows(db)
    assert row["success"] is True
    assert result["p50_ms"] == pytest.approx(row["p50_ms"])
    return row


def cpu_record(**fields: Any) -> Any:
    """A host-CPU detection record, as the cpu backend writes one (fields override)."""
    from hwaccel.types import HardwareInfo

    values: dict[str, Any] = {
        "backend": "cpu", "device": "cpu", "name": "test CPU", "available": True,
        "memory_total_bytes": 16 * 2**30, "memory_available_bytes": 12 * 2**30,
        "capabilities": ("fp32",), "details": {"physical_cores": 2}, "plugin": "cpu"}
    return HardwareInfo(**{**values, **fields})


def cuda_records(free_mib: list[int], total_mib: int = 16384) -> list[Any]:
    """Detection records of CUDA GPUs with these free memories, as the cuda backend writes
    them (this machine has none: tests give the estimator and the pool their own)."""
    from hwaccel.types import HardwareInfo

    return [HardwareInfo(backend="cuda", device=f"cuda:{i}", name="test GPU", index=i,
                         available=True, memory_total_bytes=total_mib * 2**20,
                         memory_available_bytes=free * 2**20,
                         capabilities=("fp32", "fp16", "bf16"), compute_resource=f"gpu:{i}",
                         plugin="cuda") for i, free in enumerate(free_mib)]


def detection_of(*hardware: Any) -> Any:
    """A detection report holding exactly these records."""
    from hwaccel.hardware.detection import DetectionReport

    return DetectionReport(hardware=list(hardware), timestamp="2026-12-02T00:00:00+00:00")


def record_result(db: Path, plugins: Any, model: str, hardware: Any, *,
                  p50_ms: float | None = 1.0, peak_mb: float | None = 400.0,
                  batch_size: int = 1, seq_len: int = 32, category: str | None = None,
                  error: str | None = None, device_peak_mb: float | None = None,
                  details: dict[str, Any] | None = None, run_id: str = "run-1",
                  test_status: str = "passed") -> None:
    """Store one measurement of ``model`` on the detected device ``hardware`` as a matrix
    cell does: stamped with the current library versions and the device's fingerprint, a
    failure when ``category`` is given."""
    from hwaccel.history.provenance import fingerprint, library_versions
    from hwaccel.history.store import Store
    from hwaccel.models.classify import classify
    from hwaccel.types import BenchmarkResult

    failed = category is not None
    result = BenchmarkResult(
        model=model, backend=hardware.backend, device=hardware.device, success=not failed,
        error_category=category, error=error, p50_ms=None if failed else p50_ms,
        mean_ms=None if failed else p50_ms, peak_rss_mb=None if failed else peak_mb,
        device_peak_mb=device_peak_mb, batch_size=batch_size, seq_len=seq_len,
        iterations=0 if failed else 20, details=details or {},
        versions=library_versions(), hardware_fingerprint=fingerprint(hardware))
    with Store(db) as store:
        store.insert_result(result, classify(model, plugins).classification, run_id,
                            source="matrix", test_status="not-run" if failed else test_status)


class FakeCudaEvent:
    """Stands in for ``torch.cuda.Event`` in the GPU backends' tests (this machine has no
    GPU): a clock that advances 2.5 ms per recorded event."""

    clock = 0.0
    log: list[str] = []

    def __init__(self, enable_timing: bool = False):
        assert enable_timing, "timing events must be created with enable_timing=True"
        self.at: float | None = None

    def record(self) -> None:
        FakeCudaEvent.clock += 2.5
        self.at = FakeCudaEvent.clock
        FakeCudaEvent.log.append("record")

    def synchronize(self) -> None:
        FakeCudaEvent.log.append("synchronize")

    def elapsed_time(self, end: FakeCudaEvent) -> float:
        assert self.at is not None and end.at is not None, "elapsed_time of unrecorded events"
        return end.at - self.at
