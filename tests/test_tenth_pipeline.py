"""A tenth pipeline, installed like any third party's, works with no change to hwaccel's core.

``tests/plugins/hwaccel-pipeline-timeseries`` is a real distribution: it is installed with
pip into a temporary folder and put on ``PYTHONPATH`` of the CLI. TAXONOMY.md places no
time-series model (PatchTST's tasks meet none of its rows), so nothing claims them without
it; the pipeline declares the model types it takes, and with it installed they are its,
benchmark and get generated tests that pass, while every other model keeps its pipeline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ONE_THREAD, benchmark_one, generate_and_run, pythonpath_env, run_cli

SOURCE = Path(__file__).parent / "plugins" / "hwaccel-pipeline-timeseries"
FORECASTERS = ["tiny:patchtst", "tiny:patchtsmixer"]
# a model of every first-party pipeline, a recurrent MoE model, and one nobody takes
OTHERS = ["tiny:bert", "tiny:gpt2", "tiny:t5", "tiny:mixtral", "tiny:mamba", "tiny:jamba",
          "tiny:vit", "tiny:clip", "tiny:llava", "tiny:whisper", "tiny:rag",
          "tiny:UNet2DConditionModel", "rag:minilm+tiny:gpt2", "tiny:timesfm"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The distribution installed by pip into a fresh folder (built from a copy, so the
    source tree gets no build output)."""
    root = tmp_path_factory.mktemp("tenth")
    copy, target = root / "src", root / "site"
    shutil.copytree(SOURCE, copy)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-build-isolation", "--target", str(target), str(copy)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return target


def _classify(models: list[str], env: dict[str, str] | None = None) -> dict[str, dict]:
    proc = run_cli("classify", *models, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return {row["model"]: row for row in json.loads(proc.stdout)}


def test_it_is_listed_as_a_loaded_pipeline(installed):
    proc = run_cli("list-plugins", "--json", env=pythonpath_env(installed))
    assert proc.returncode == 0, proc.stderr
    plugins = {p["name"]: p for p in json.loads(proc.stdout)["plugins"]}
    record = plugins["timeseries"]
    assert (record["status"], record["kind"]) == ("loaded", "pipeline")
    assert record["distribution"] == "hwaccel-pipeline-timeseries"


def test_it_takes_the_forecasters_and_every_other_model_keeps_its_pipeline(installed):
    without = _classify(FORECASTERS + OTHERS)
    with_it = _classify(FORECASTERS + OTHERS, env=pythonpath_env(installed))
    for model in FORECASTERS:
        assert without[model]["pipeline"] is None and without[model]["workload"] is None
        row = with_it[model]
        assert (row["pipeline"], row["plugin"]) == ("timeseries", "timeseries")
        assert row["distribution"] == "hwaccel-pipeline-timeseries"
        assert row["subfamily"] == "forecaster" and row["workload"]
        assert row["confidence"] == 1.0 and row["signal"] == "config"
    for model in OTHERS:
        assert with_it[model] == without[model], model


@pytest.mark.slow
def test_a_forecaster_benchmarks_on_the_cpu(installed, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", pythonpath_env(installed)["PYTHONPATH"])
    for name, value in ONE_THREAD.items():
        monkeypatch.setenv(name, value)
    row = benchmark_one("tiny:patchtst", tmp_path / "x.duckdb", "--iterations", "3",
                        "--min-seconds", "0")
    assert (row["hardware"], row["plugin"]) == ("cpu", "cpu")
    assert (row["pipeline"], row["subfamily"]) == ("timeseries", "forecaster")


@pytest.mark.slow
def test_generated_tests_of_the_forecasters_pass(installed, tmp_path):
    run = generate_and_run(FORECASTERS, tmp_path / "tests",
                           env={**pythonpath_env(installed), **ONE_THREAD})
    # the shared checks and the pipeline's three, for each model
    assert "failed" not in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]


CONTRACT = '''\
from hwaccel_testkit import PipelineContract


class TestTimeseries(PipelineContract):
    plugin = "timeseries"
'''


def test_it_passes_the_pipeline_contract(installed, tmp_path):
    (tmp_path / "test_contract.py").write_text(CONTRACT, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **pythonpath_env(installed)})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "failed" not in proc.stdout and "7 passed" in proc.stdout, proc.stdout[-1000:]


@pytest.mark.slow
def test_it_composes_with_a_seventh_backend_installed_beside_it(installed, tmp_path):
    """The third-party pipeline's model on the third-party backend: neither names the other,
    and the core knows neither."""
    from test_seventh_backend import SOURCE as ORTCPU
    from test_seventh_backend import install

    env = {**pythonpath_env(installed, install(ORTCPU, tmp_path)),
           "HWACCEL_CACHE_DIR": str(tmp_path / "cache")}
    proc = run_cli("benchmark", "tiny:patchtst", "--backend", "ortcpu", "--json",
                   "--iterations", "3", "--min-seconds", "0",
                   "--db", str(tmp_path / "x.duckdb"), env={**env, **ONE_THREAD})
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)["results"]
    assert (row["backend"], row["success"]) == ("ortcpu", True), row["error"]
    assert row["plugin"] == "ortcpu" and row["max_abs_diff"] is not None
