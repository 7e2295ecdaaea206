"""``hwaccel matrix``: cells tested and measured, failures recorded, runs that survive kills.

The failure cases use a real test backend plugin whose benchmark segfaults, hangs or eats
memory on one device each; its generated tests use the CPU, so each cell's failure comes
from its benchmark job. Kills and Ctrl-C are sent to a real ``hwaccel matrix`` process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pytest

from conftest import ONE_THREAD, make_plugin_dist, pythonpath_env, run_cli
from hwaccel.running.matrix import HOST_CPU, assign_cores, example_models

FAST = ("--iterations", "3", "--min-seconds", "0", "--warmup", "1")

FAULTY = '''\
"""A test backend whose benchmark job segfaults, hangs or eats memory, by device."""

from hwaccel import HardwareInfo, TemplatePart, hookimpl

NAME = "faulty"
SNIPPETS = {
    "imports": "import torch",
    "availability": 'DEVICE = "cpu"\\n\\n\\ndef unavailable_reason():\\n    return None',
    "placement": ("def place_model(model):\\n    return model\\n\\n\\n"
                  "def place_inputs(inputs):\\n    return inputs"),
    "synchronize": "def synchronize():\\n    pass",
    "cleanup": "def release(model):\\n    del model",
    "tolerance": "ATOL = 1e-5\\nRTOL = 1e-4",
}


@hookimpl
def hwaccel_detect():
    return [HardwareInfo(backend=NAME, device=f"faulty:{how}", name=f"faulty {how}",
                         available=True, index=i)
            for i, how in enumerate(("segfault", "hang", "oom"))]


@hookimpl
def hwaccel_template(backend):
    if backend != NAME:
        return None
    return TemplatePart(owner="backend", name=NAME, snippets=SNIPPETS)


@hookimpl
def hwaccel_benchmark(request):
    if request.hardware.backend != NAME:
        return None
    import ctypes
    import time

    how = request.hardware.device.split(":")[1]
    if how == "segfault":
        ctypes.string_at(0)
    if how == "hang":
        time.sleep(3600)
    hoard = []
    while len(hoard) < 64:  # 64 x 64 MiB = 4 GiB at most, touched page by page
        hoard.append(b"x" * (64 << 20))
        time.sleep(0.02)
    time.sleep(3600)
'''


LANES = '''\
"""A test backend with two accelerators of its own, whose benchmark records where it ran."""

from hwaccel import BenchmarkResult, HardwareInfo, TemplatePart, hookimpl
from hwaccel_test_faulty import SNIPPETS

NAME = "lanes"


@hookimpl
def hwaccel_detect():
    return [HardwareInfo(backend=NAME, device=f"lanes:{i}", name=f"lane {i}", available=True,
                         index=i, compute_resource=f"lane-{i}") for i in range(2)]


@hookimpl
def hwaccel_template(backend):
    if backend != NAME:
        return None
    return TemplatePart(owner="backend", name=NAME, snippets=SNIPPETS)


@hookimpl
def hwaccel_benchmark(request):
    if request.hardware.backend != NAME:
        return None
    import os
    import time

    from hwaccel.kit.measure import summarize, time_calls

    began = time.time()
    timing = time_calls(lambda: time.sleep(0.02), warmup=1, min_iterations=3,
                        min_seconds=2.0, max_seconds=5.0)
    return BenchmarkResult(
        model=request.model, backend=NAME, device=request.hardware.device, success=True,
        cold_ms=timing.cold_ms, iterations=len(timing.times_ms),
        threads=request.settings.threads, details={"began": began, "ended": time.time(),
                 "affinity": sorted(os.sched_getaffinity(0))},
        **summarize(timing.times_ms, 1))
'''


@pytest.fixture(scope="module")
def faulty_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment in which the faulty and lanes backend plugins are installed."""
    root = make_plugin_dist(tmp_path_factory.mktemp("faulty") / "site", "hwaccel-faulty",
                            {"faulty": "hwaccel_test_faulty", "lanes": "hwaccel_test_lanes"},
                            {"hwaccel_test_faulty.py": FAULTY, "hwaccel_test_lanes.py": LANES})
    return {**pythonpath_env(root), **ONE_THREAD}


def rows(db: Path, sql: str = "SELECT * FROM hardware_results ORDER BY id") -> list[dict]:
    with duckdb.connect(str(db), read_only=True) as conn:
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_cores_are_never_shared_by_cells_that_run_at_once():
    lanes = {HOST_CPU, "gpu:0", "gpu:1"}
    concurrency, mapping = assign_cores(lanes, workers=3, cores=[0, 1, 2, 3])
    assert concurrency == 3
    assert mapping[HOST_CPU] == [0, 1]
    assert sorted(mapping["gpu:0"] + mapping["gpu:1"]) == [2, 3]
    # Two cores for three lanes: the accelerators share one core, so only two run at once.
    concurrency, mapping = assign_cores(lanes, workers=3, cores=[0, 1])
    assert concurrency == 2
    assert mapping[HOST_CPU] == [0] and mapping["gpu:0"] == mapping["gpu:1"] == [1]


def test_one_worker_or_one_lane_pins_nothing():
    assert assign_cores({HOST_CPU, "gpu:0"}, workers=1, cores=[0, 1]) == \
        (1, {HOST_CPU: None, "gpu:0": None})
    assert assign_cores({HOST_CPU}, workers=4, cores=[0, 1, 2, 3]) == (1, {HOST_CPU: None})
    # One core: the host lane cannot give one away.
    assert assign_cores({HOST_CPU, "gpu:0"}, workers=2, cores=[0])[0] == 1


def test_every_pipeline_names_example_models_of_its_own_pipeline(plugins):
    from hwaccel.models.classify import classify

    pipelines = [r.name for r in plugins.loaded() if r.kind == "pipeline"]
    assert len(pipelines) == 9
    for pipeline in pipelines:
        models = example_models(plugins, [pipeline])
        assert models, f"pipeline {pipeline} names no example model"
        for model in models:
            assert classify(model, plugins).classification.pipeline == pipeline, model
    assert "minilm" in example_models(plugins)


def test_unknown_pipeline_and_bad_options_are_one_line_errors(tmp_db):
    for args, needle in ((("--pipelines", "nope"), "unknown pipeline 'nope'"),
                         (("--workers", "0"), "--workers must be at least 1"),
                         (("--models", "tiny:not_a_type", "--backends", "cpu"), "not_a_type"),
                         (("--backends", "warp-drive"), "unknown backend 'warp-drive'"),
                         (("--skip-backends", "warp-drive"), "unknown backend 'warp-drive'"),
                         (("--backends", "cpu", "--skip-backends", "cpu"),
                          "--skip-backends leaves no backend to measure"),
                         (("--memory-limit", "nan"), "--memory-limit must be a positive"),
                         (("--timeout", "nan"), "--timeout must be a positive number")):
        proc = run_cli("matrix", *args, "--db", str(tmp_db))
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.slow
def test_segfault_hang_and_memory_hog_are_recorded_and_the_rest_measured(faulty_env, tmp_db):
    proc = run_cli("matrix", "--models", "tiny:bert", "--backends", "cpu", "faulty",
                   "--db", str(tmp_db), "--timeout", "15", "--memory-limit", "1500", *FAST,
                   env=faulty_env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = {r["device"]: r for r in rows(tmp_db)}
    assert set(found) == {"cpu", "faulty:segfault", "faulty:hang", "faulty:oom"}
    assert found["cpu"]["success"] and found["cpu"]["p50_ms"] > 0
    assert found["cpu"]["test_status"] == "passed"
    segfault, hang, oom = (found[f"faulty:{h}"] for h in ("segfault", "hang", "oom"))
    assert (segfault["error_category"], hang["error_category"], oom["error_category"]) == \
        ("crash", "timeout", "oom")
    assert "SIGSEGV" in segfault["error"]
    assert "15 s" in hang["error"]
    assert "over the memory limit of 1,500 MiB" in oom["error"]
    for row in (segfault, hang, oom):
        assert not row["success"] and row["test_status"] == "passed", row
        assert row["source"] == "matrix" and len(row["config_key"]) == 24
    run = rows(tmp_db, "SELECT * FROM runs")
    assert [r["status"] for r in run] == ["finished"] and run[0]["planned"] == 4
    assert "[4/4]" in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPU cores")
def test_workers_run_different_compute_resources_at_once_on_their_own_cores(faulty_env,
                                                                          tmp_db):
    proc = run_cli("matrix", "--models", "tiny:bert", "--backends", "lanes", "--workers", "2",
                   "--db", str(tmp_db), *FAST, env=faulty_env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = rows(tmp_db)
    assert [r["success"] for r in found] == [True, True], found
    details = [json.loads(r["details"]) for r in found]
    affinities = [d["affinity"] for d in details]
    assert len(affinities[0]) == len(affinities[1]) == 1
    assert affinities[0] != affinities[1], "two timed cells shared a core"
    assert sorted(r["cpu_affinity"] for r in found) == sorted(str(a[0]) for a in affinities)
    first, second = sorted(details, key=lambda d: d["began"])
    assert second["began"] < first["ended"], "the two lanes did not run at once"
    assert {r["threads"] for r in found} == {1}  # the planner gave one thread per core


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _start_matrix(db: Path, *extra: str) -> subprocess.Popen[str]:
    # Ctrl-C as a terminal delivers it, even when this session was started in the background
    # of a script (which ignores SIGINT, an ignorance every child would inherit)
    return subprocess.Popen(
        [sys.executable, "-m", "hwaccel", "matrix", "--models", "tiny:bert", "tiny:gpt2",
         "tiny:vit", "--backends", "cpu", "--db", str(db), *FAST, *extra],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env={**os.environ, **ONE_THREAD},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_cells(proc: subprocess.Popen[str], count: int) -> list[psutil.Process]:
    """Read the driver's progress lines until ``count`` cells are recorded."""
    assert proc.stderr is not None
    deadline = time.monotonic() + 180
    for line in proc.stderr:
        if f"[{count}/3]" in line:
            return _descendants(proc.pid)
        assert time.monotonic() < deadline, "the matrix made no progress"
    pytest.fail(f"the matrix ended before {count} cells: exit {proc.wait()}")


def _assert_all_gone(processes: list[psutil.Process]) -> None:
    gone, alive = psutil.wait_procs(processes, timeout=15)
    assert not alive, f"left running: {[p.cmdline() for p in alive]}"


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_keeps_finished_cells(tmp_db):
    proc = _start_matrix(tmp_db)
    helpers = _wait_for_cells(proc, 1)
    assert helpers, "the driver had no job processes"
    proc.kill()
    proc.wait()
    _assert_all_gone(helpers)
    kept = rows(tmp_db)
    assert len(kept) >= 1 and all(r["success"] for r in kept)

    resumed = run_cli("matrix", "--models", "tiny:bert", "tiny:gpt2", "tiny:vit",
                      "--backends", "cpu", "--db", str(tmp_db), "--resume", *FAST,
                      env=ONE_THREAD, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resume: {len(kept)} of 3 cells already measured" in resumed.stderr
    final = rows(tmp_db)
    assert sorted(r["model_id"] for r in final) == ["tiny:bert", "tiny:gpt2", "tiny:vit"]
    assert all(r["success"] for r in final)
    assert final[:len(kept)] == kept, "a finished cell changed"
    statuses = [r["status"] for r in rows(tmp_db, "SELECT * FROM runs ORDER BY started")]
    # the killed run never got to say more; the resumed run's first write found it gone
    assert statuses == ["interrupted", "finished"]


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_what_was_measured(tmp_db):
    proc = _start_matrix(tmp_db)
    helpers = _wait_for_cells(proc, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    _assert_all_gone(helpers)
    (run,) = rows(tmp_db, "SELECT * FROM runs")
    assert run["status"] == "interrupted"
    recorded = rows(tmp_db)
    assert 1 <= len(recorded) < 3 and all(r["success"] for r in recorded)
    assert f"{len(recorded)} of 3 cells were recorded" in err


@pytest.mark.slow
def test_benchmark_jobs_have_a_memory_limit_too(faulty_env, tmp_db):
    limited = run_cli("benchmark", "tiny:bert", "--backend", "faulty:oom", "--db", str(tmp_db),
                      "--timeout", "60", "--memory-limit", "1500", "--json", *FAST,
                      env=faulty_env, timeout=180)
    assert limited.returncode == 1, limited.stderr[-2000:]
    (oom,) = json.loads(limited.stdout)["results"]
    assert oom["error_category"] == "oom"
    assert "over the memory limit of 1,500 MiB" in oom["error"]
    default = run_cli("benchmark", "tiny:bert", "--backend", "cpu", "--db", str(tmp_db),
                      *FAST, env=faulty_env, timeout=180)  # no flag: 80% of what is free
    assert default.returncode == 0, default.stderr[-2000:]
    limits = [json.loads(r["settings"])["memory_limit_mb"]
              for r in rows(tmp_db, "SELECT settings FROM runs ORDER BY started")]
    import psutil

    assert 0 < limits[-1] <= psutil.virtual_memory().total / 2**20 * 0.8
    bad = run_cli("benchmark", "tiny:bert", "--backend", "cpu", "--memory-limit", "-3",
                  "--db", str(tmp_db))
    assert bad.returncode == 2 and "--memory-limit must be a positive" in bad.stderr
