"""The README's example backend plugin (tests/example_plugin) works end to end.

It is made importable as a real distribution (module plus .dist-info with the entry point
its pyproject.toml declares), then listed, detected, used to generate a test file that
passes, and benchmarked into the database.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import tomllib

from conftest import pythonpath_env, run_cli

EXAMPLE = Path(__file__).parent / "example_plugin"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("example")
    shutil.copytree(EXAMPLE / "src" / "hwaccel_cpu1", root / "hwaccel_cpu1")
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    info = root / "hwaccel_cpu1-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    entry_points = project["entry-points"]["hwaccel"]
    (info / "entry_points.txt").write_text(
        "[hwaccel]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    return {**pythonpath_env(root), "HWACCEL_CACHE_DIR": str(root / "cache")}


def test_example_plugin_is_listed_as_a_loaded_backend(env):
    proc = run_cli("list-plugins", "--json", env=env)
    plugins = {p["name"]: p for p in json.loads(proc.stdout)["plugins"]}
    assert plugins["cpu1"]["status"] == "loaded" and plugins["cpu1"]["kind"] == "backend"
    assert plugins["cpu1"]["distribution"] == "hwaccel-cpu1"


@pytest.mark.slow
def test_example_plugin_generates_passing_tests_and_benchmarks(env, tmp_path):
    detect = json.loads(run_cli("detect", "--json", env=env).stdout)
    assert "cpu1" in [h["backend"] for h in detect["hardware"]]
    out = tmp_path / "tests"
    proc = run_cli("generate", "tiny:gpt2", "--backend", "cpu1", "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(out)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **env})
    assert run.returncode == 0 and "4 passed" in run.stdout, run.stdout[-2000:]
    db = tmp_path / "x.duckdb"
    bench = run_cli("benchmark", "tiny:gpt2", "--backend", "cpu1", "--db", str(db),
                    "--iterations", "3", "--min-seconds", "0", env=env)
    assert bench.returncode == 0, bench.stderr
    with duckdb.connect(str(db), read_only=True) as conn:
        row = conn.execute("SELECT hardware, device, threads, success, plugin "
                           "FROM hardware_results").fetchone()
    assert row == ("cpu1", "cpu1", 1, True, "cpu1")
