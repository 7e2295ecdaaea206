"""``hwaccel new-plugin``: the rendered distributions install, load and pass the testkit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import pythonpath_env, run_cli


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A backend ``acme`` and a pipeline ``tsdemo`` rendered and pip-installed into a folder."""
    base = tmp_path_factory.mktemp("new-plugin")
    out, site = base / "src", base / "site"
    for kind, name in (("backend", "acme"), ("pipeline", "tsdemo")):
        proc = run_cli("new-plugin", kind, name, "--out", str(out))
        assert proc.returncode == 0, proc.stderr
    dists = [out / "hwaccel-acme", out / "hwaccel-pipeline-tsdemo"]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(site), *map(str, dists)],
                   check=True, capture_output=True, timeout=300)
    return dists, pythonpath_env(site)


def test_both_plugins_are_listed_loaded_with_their_kind(installed):
    _, env = installed
    listed = json.loads(run_cli("list-plugins", "--json", env=env).stdout)["plugins"]
    found = {p["name"]: (p["status"], p["kind"], p["distribution"]) for p in listed}
    assert found["acme"] == ("loaded", "backend", "hwaccel-acme")
    assert found["tsdemo"] == ("loaded", "pipeline", "hwaccel-pipeline-tsdemo")


@pytest.mark.parametrize("index", [0, 1], ids=["backend", "pipeline"])
def test_the_rendered_contract_test_passes(installed, index):
    dists, env = installed
    tests = dists[index] / "tests"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(tests), str(tests)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_the_rendered_files_pass_ruff_with_its_defaults(installed):
    dists, _ = installed
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache",
                           "--select", "E,F,W,I,B,UP", *map(str, dists)],
                          capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout


@pytest.mark.parametrize(("name", "reason"), [
    ("Acme", "is not a lowercase id"),
    ("2fast", "is not a lowercase id"),
    ("acme_x", "is not a lowercase id"),
    ("cpu", "is already an installed plugin's id"),
])
def test_a_bad_name_is_one_line_and_exit_2(tmp_path, name, reason):
    proc = run_cli("new-plugin", "backend", name, "--out", str(tmp_path))
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("hwaccel: error: ") and reason in line
    assert not any(tmp_path.iterdir())


def test_a_non_empty_target_is_refused_unless_forced(tmp_path):
    target = tmp_path / "hwaccel-pipeline-tsdemo"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    proc = run_cli("new-plugin", "pipeline", "tsdemo", "--out", str(tmp_path))
    assert proc.returncode == 2 and "is not empty" in proc.stderr
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    forced = run_cli("new-plugin", "pipeline", "tsdemo", "--out", str(tmp_path), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (target / "notes.txt").read_text() == "mine"
    assert (target / "src" / "hwaccel_pipeline_tsdemo" / "workload.py").is_file()
