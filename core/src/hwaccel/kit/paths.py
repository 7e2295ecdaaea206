"""Where hwaccel keeps its cache files and its default database."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Return the cache folder (``HWACCEL_CACHE_DIR``, else the user cache dir), created.

    :raises UsageError: the folder cannot be created or written (it lies under a regular
        file, under ``/proc``, or is read-only): one line naming the variable that chose it.
    """
    override = os.environ.get("HWACCEL_CACHE_DIR")
    if override:
        path, chosen_by = Path(override).expanduser(), "HWACCEL_CACHE_DIR"
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("hwaccel", appauthor=False))
        chosen_by = "XDG_CACHE_HOME" if os.environ.get("XDG_CACHE_HOME") else "the home folder"
    try:
        path.mkdir(parents=True, exist_ok=True)
        usable = path.is_dir() and os.access(path, os.W_OK | os.X_OK)
        reason = "it is not a writable folder"
    except FileExistsError:
        usable, reason = False, "it is a file, not a folder"
    except (OSError, RuntimeError) as exc:
        usable, reason = False, getattr(exc, "strerror", None) or str(exc)
    if not usable:
        from hwaccel.errors import UsageError

        raise UsageError(f"cannot use the cache folder {path} (from {chosen_by}): {reason}; "
                         "set HWACCEL_CACHE_DIR to a writable folder")
    return path


def default_db_path() -> Path:
    """Return the default DuckDB file (``HWACCEL_DB``, else ``hwaccel.duckdb`` in the cache)."""
    override = os.environ.get("HWACCEL_DB")
    return Path(override).expanduser() if override else cache_dir() / "hwaccel.duckdb"


def hf_hub_cache() -> Path:
    """Return the Hugging Face hub cache folder, read from the environment now, in
    huggingface_hub's precedence: ``HF_HUB_CACHE``, ``HUGGINGFACE_HUB_CACHE``, ``HF_HOME``/hub,
    ``XDG_CACHE_HOME``/huggingface/hub, ``~/.cache/huggingface/hub``.

    huggingface_hub computes the same folder once, when it is imported
    (``huggingface_hub.constants.HF_HUB_CACHE``); hwaccel reads it per call so that a
    variable set later counts. An empty variable counts as unset.
    """
    def expand(value: str) -> str:
        return os.path.expandvars(os.path.expanduser(value))

    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "huggingface")
    hub = (os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
           or os.path.join(expand(home), "hub"))
    return Path(expand(hub))
