"""A seventh backend, installed for real, composes with the others with no core change.

``tests/plugins/hwaccel-ortcpu`` (ONNX Runtime's CPU provider on fixed-shape ONNX exports) is
built only from the plugin API and ``hwaccel.kit``. It is installed with pip into a folder of
its own and used through ``PYTHONPATH``: listed, detected, benchmarked, its generated test
run, and checked by hwaccel-testkit's ``BackendContract``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ONE_THREAD, generate_and_run, pythonpath_env, run_cli

SOURCE = Path(__file__).resolve().parent / "plugins" / "hwaccel-ortcpu"
CONTRACT = '''\
from hwaccel_testkit import BackendContract


class TestOrtcpu(BackendContract):
    plugin = "ortcpu"
    vendor_modules = ("onnxruntime", "onnx")
'''


def install(source: Path, tmp: Path) -> Path:
    """pip-install a copy of the distribution at ``source`` into a folder; return it."""
    copy, target = tmp / source.name, tmp / "site"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(copy)],
                   check=True, capture_output=True, timeout=300)
    return target


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The environment in which hwaccel-ortcpu is installed."""
    return pythonpath_env(install(SOURCE, tmp_path_factory.mktemp("ortcpu")))


def test_it_is_listed_and_detected(env):
    listed = json.loads(run_cli("list-plugins", "--json", env=env).stdout)
    (record,) = [p for p in listed["plugins"] if p["name"] == "ortcpu"]
    assert (record["status"], record["kind"], record["distribution"]) == (
        "loaded", "backend", "hwaccel-ortcpu")
    proc = run_cli("detect", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    (device,) = [h for h in json.loads(proc.stdout)["hardware"] if h["backend"] == "ortcpu"]
    assert device["available"] and device["plugin"] == "ortcpu", device


def test_benchmark_runs_the_onnx_graph_and_compares_it_with_the_cpu(env, tmp_path):
    # the generated test's shapes, so that its export is found in the cache
    proc = run_cli("benchmark", "tiny:bert", "--backend", "ortcpu", "--iterations", "2",
                   "--warmup", "0", "--min-seconds", "0", "--batch-size", "2", "--seq-len", "16",
                   "--db", str(tmp_path / "r.duckdb"),
                   "--json", env={**env, **ONE_THREAD})
    assert proc.returncode == 0, proc.stderr[-2000:]
    (result,) = json.loads(proc.stdout)["results"]
    assert result["success"], result["error"]
    assert (result["backend"], result["plugin"]) == ("ortcpu", "ortcpu")
    assert result["iterations"] >= 2
    assert result["max_abs_diff"] is not None and result["max_abs_diff"] < 1e-3


def test_its_generated_test_passes(env, tmp_path):
    run = generate_and_run(["tiny:bert"], tmp_path / "generated", backend="ortcpu",
                           env={**env, **ONE_THREAD})
    assert "skipped" not in run.stdout, run.stdout[-2000:]


def test_it_passes_the_backend_contract(env, tmp_path):
    (tmp_path / "test_contract.py").write_text(CONTRACT, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "failed" not in proc.stdout and " passed" in proc.stdout
