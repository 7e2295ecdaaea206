"""The real install path: wheels of every distribution, a fresh venv, ``hwaccel[rocm,qnn]``.

Builds a wheel of each distribution of the repository (the core, ``plugins/*``,
``pipelines/*``, ``hwaccel-*/`` and the meta-package at the root) from a clean copy of its
sources, creates a fresh virtual environment, installs torch the way the Makefile does (the
pinned CPU build, first), then ``pip install --find-links WHEELS "hwaccel[rocm,qnn]"`` with
the other dependencies from the package registry, and checks that ``hwaccel list-plugins``
shows exactly the CPU backend, the two backends asked for and the nine pipelines, that
``hwaccel detect`` there finds QNN's HTP (Qualcomm's simulator of it, on x86_64 Linux), and
that ``hwaccel matrix --models tiny:bert --backends cpu`` passes there: its job worker and
generated test need nothing but what ``pip install hwaccel`` brought (pytest included).

Nothing is kept between runs but pip's own cache: the copy, the wheels and the venv
(about 1.7 GB) live in a temporary folder shared by this module's tests and removed at the
end. It takes about 2 minutes on a 2-core machine, most of it installing torch and the
registry dependencies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = {"text", "vision", "vision-text", "audio", "multimodal", "diffusion", "moe",
             "state-space", "rag"}
EXPECTED = {"cpu", "rocm", "qnn"} | PIPELINES
NOT_ASKED = {"hwaccel-cuda", "hwaccel-mps", "hwaccel-openvino", "hwaccel-web"}
SKIP_IN_COPY = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".venv",
                                      ".ruff_cache", ".pytest_cache")


def distribution_dirs() -> list[Path]:
    """Every distribution folder of the repository, the meta-package (the root) last."""
    found = [ROOT / "core"]
    for pattern in ("plugins/*/pyproject.toml", "pipelines/*/pyproject.toml",
                    "hwaccel-*/pyproject.toml"):
        found += sorted(p.parent for p in ROOT.glob(pattern))
    return [*found, ROOT]


def makefile_torch() -> str:
    """The torch requirement the Makefile installs first (``torch==2.13.0``)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"pip install --quiet (torch==\S+)", text)
    assert match, "the Makefile no longer installs a pinned torch first"
    return match.group(1)


def clean_env() -> dict[str, str]:
    """This environment without the test venv's or hwaccel's own settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
           and not (k.startswith("HWACCEL_") and k not in {"HWACCEL_CACHE_DIR", "HWACCEL_DB"})}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``, assert it succeeded, and return it."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=clean_env(), **kwargs)
    assert proc.returncode == 0, f"{cmd[:4]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def copy_sources(dest: Path) -> list[Path]:
    """Copy each distribution's sources (no build leftovers) under ``dest``; return them."""
    copies = []
    for src in distribution_dirs():
        if src == ROOT:
            target = dest / "hwaccel-meta"
            target.mkdir()
            for name in ("pyproject.toml", "README.md"):
                shutil.copy2(ROOT / name, target / name)
        else:
            target = dest / src.relative_to(ROOT)
            shutil.copytree(src, target, ignore=SKIP_IN_COPY)
        copies.append(target)
    return copies


def machine_simulates_the_htp() -> bool:
    """True on the Linux x86_64 hosts whose ``onnxruntime-qnn`` wheel (a dependency of
    ``hwaccel-qnn`` there) carries Qualcomm's HTP simulator."""
    import platform

    return sys.platform == "linux" and platform.machine().lower() in ("x86_64", "amd64")


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A temporary folder removed at the end (pytest's tmp_path would keep the venv)."""
    path = Path(tempfile.mkdtemp(prefix="hwaccel-install-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def installed(workdir: Path) -> dict:
    """Build the wheels, make the venv and install ``hwaccel[rocm,qnn]`` from them (once for
    the module); return pip's install report, the venv and the wheels folder."""
    timings: dict[str, float] = {}

    def step(name: str, cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        start = time.perf_counter()
        proc = run(cmd, timeout)
        timings[name] = time.perf_counter() - start
        return proc

    sources, wheels, venv = workdir / "src", workdir / "wheels", workdir / "venv"
    sources.mkdir()
    copies = copy_sources(sources)
    # setuptools is in the test's venv, so the builds need no isolated environment
    isolation = ["--no-build-isolation"] if find_spec("setuptools") else []
    step("build wheels", [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation,
                          "--quiet", "-w", str(wheels), *map(str, copies)], 600)
    built = sorted(p.name.split("-")[0] for p in wheels.glob("*.whl"))
    assert len(built) == len(copies), built
    assert {"hwaccel", "hwaccel_core", "hwaccel_cpu", "hwaccel_rocm", "hwaccel_qnn"} <= set(built)

    step("create venv", [sys.executable, "-m", "venv", str(venv)], 120)
    python = str(venv / "bin" / "python")
    step("upgrade pip", [python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], 300)
    step("install torch", [python, "-m", "pip", "install", "--quiet", makefile_torch()], 900)
    report_file = workdir / "install-report.json"
    step("install hwaccel[rocm,qnn]",
         [python, "-m", "pip", "install", "--quiet", "--find-links", str(wheels),
          "--report", str(report_file), "hwaccel[rocm,qnn]"], 900)
    print("install timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return {"report": json.loads(report_file.read_text("utf-8")), "venv": venv,
            "wheels": wheels}


@pytest.mark.slow
def test_hwaccel_rocm_qnn_installs_exactly_those_plugins(workdir: Path, installed: dict) -> None:
    timings: dict[str, float] = {}
    venv, wheels = installed["venv"], installed["wheels"]
    installed = {item["metadata"]["name"].lower(): item["download_info"]["url"]
                 for item in installed["report"]["install"]}
    ours = {name: url for name, url in installed.items() if name.startswith("hwaccel")}
    assert {"hwaccel", "hwaccel-core", "hwaccel-cpu", "hwaccel-rocm", "hwaccel-qnn"} <= set(ours)
    assert {f"hwaccel-pipeline-{p}" for p in PIPELINES} <= set(ours)
    assert not NOT_ASKED & set(ours), ours
    for name, url in ours.items():  # each from the wheels just built, not from a registry
        assert url.startswith("file://") and Path(url[7:]).parent == wheels, (name, url)
    assert "torch" not in installed, "installing hwaccel replaced the torch installed first"

    start = time.perf_counter()
    listing = run([str(venv / "bin" / "hwaccel"), "list-plugins", "--json"], 120)
    timings["list-plugins"] = time.perf_counter() - start
    data = json.loads(listing.stdout)
    assert data["prefix"] == str(venv)
    plugins = {p["name"]: p for p in data["plugins"]}
    assert set(plugins) == EXPECTED
    assert {n: p["status"] for n, p in plugins.items()} == dict.fromkeys(EXPECTED, "loaded")
    assert plugins["rocm"]["distribution"] == "hwaccel-rocm"
    assert plugins["qnn"]["distribution"] == "hwaccel-qnn"
    assert {plugins[p]["kind"] for p in PIPELINES} == {"pipeline"}

    start = time.perf_counter()
    detected = subprocess.run([str(venv / "bin" / "hwaccel"), "detect", "--json"],
                              capture_output=True, text=True, timeout=300,
                              env={**clean_env(), "HWACCEL_CACHE_DIR": str(workdir / "cache")})
    timings["detect"] = time.perf_counter() - start
    assert detected.returncode == 0, detected.stderr
    qnn = [h for h in json.loads(detected.stdout)["hardware"] if h["backend"] == "qnn"]
    if machine_simulates_the_htp():  # onnxruntime-qnn's wheel carries the HTP simulator
        assert [(h["device"], h["available"], h["details"]["simulator"]) for h in qnn] == [
            ("qnn:htp", True, True)], qnn
        assert qnn[0]["name"].startswith("Qualcomm HTP (") and "simulator" in qnn[0]["name"]

    none = subprocess.run([str(venv / "bin" / "hwaccel"), "list-plugins", "--json"],
                          capture_output=True, text=True, timeout=120,
                          env={**clean_env(), "HWACCEL_LOAD_PLUGINS": ""})
    assert none.returncode == 0, none.stderr
    assert not [p["name"] for p in json.loads(none.stdout)["plugins"]
                if p["status"] == "loaded"]

    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))


@pytest.mark.slow
def test_the_matrix_of_tiny_bert_on_the_cpu_passes_in_the_installed_venv(
        workdir: Path, installed: dict) -> None:
    # the done-when: pip install of the built wheels into a fresh venv, then
    # `hwaccel matrix --models tiny:bert --backends cpu` passes (its generated test and job
    # worker import pytest, which the install must have brought)
    folder = workdir / "matrix"
    folder.mkdir()
    env = {**{k: v for k, v in clean_env().items() if k != "HWACCEL_DB"},
           "HWACCEL_CACHE_DIR": str(folder / "cache"), "XDG_CACHE_HOME": str(folder / "xdg")}
    start = time.perf_counter()
    proc = subprocess.run([str(installed["venv"] / "bin" / "hwaccel"), "matrix", "--models",
                           "tiny:bert", "--backends", "cpu", "--strict", "--json"],
                          capture_output=True, text=True, timeout=600, cwd=folder, env=env)
    print(f"matrix in the installed venv: {time.perf_counter() - start:.1f} s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (cell,) = json.loads(proc.stdout)["cells"]
    assert (cell["model"], cell["backend"], cell["success"]) == ("tiny:bert", "cpu", True), cell
    assert cell["test_status"] == "passed", cell
    assert cell["p50_ms"] > 0 and cell["versions"]["hwaccel-core"] == (
        ROOT / "VERSION").read_text().strip()
    assert Path(json.loads(proc.stdout)["db"]).is_relative_to(folder / "cache")
