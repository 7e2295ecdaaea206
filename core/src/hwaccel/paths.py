"""Where hwaccel keeps its cache files and its default database."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Return the cache folder (``HWACCEL_CACHE_DIR``, else the user cache dir), created."""
    override = os.environ.get("HWACCEL_CACHE_DIR")
    if override:
        path = Path(override).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("hwaccel", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_db_path() -> Path:
    """Return the default DuckDB file (``HWACCEL_DB``, else ``hwaccel.duckdb`` in the cache)."""
    override = os.environ.get("HWACCEL_DB")
    return Path(override).expanduser() if override else cache_dir() / "hwaccel.duckdb"


def hf_hub_cache() -> Path:
    """Return the Hugging Face hub cache folder, honouring ``HF_HUB_CACHE`` and ``HF_HOME``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(Path.home(), ".cache", "huggingface")
    return Path(home).expanduser() / "hub"
