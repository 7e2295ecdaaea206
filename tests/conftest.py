"""Shared fixtures: an isolated cache and database, the CLI in a subprocess, real test plugins.

Every test session gets its own hwaccel cache folder and an empty Hugging Face cache, so no
test reads the user's files or a model hub. Plugins for tests are real distributions: a
module plus a ``.dist-info`` folder with ``entry_points.txt``, put on ``PYTHONPATH`` of a
subprocess, so they load through the same entry-point machinery as installed ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

SESSION_ENV: dict[str, str] = {}
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


@pytest.fixture
def tmp_db(tmp_path: Path) -> Path:
    """A path for a fresh DuckDB file."""
    return tmp_path / "results.duckdb"
