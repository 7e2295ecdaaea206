"""Models in the local Hugging Face hub cache, found through ``huggingface_hub``.

The cache folder follows huggingface_hub's own precedence (:func:`hwaccel.kit.paths.hf_hub_cache`),
read when asked rather than when huggingface_hub was imported. ``refs/main`` names the
snapshot of a repository; huggingface_hub locates files in it (``try_to_load_from_cache``)
and lists the cached repositories (``scan_cache_dir``). What it finds is used only when it
lies inside the cache folder: a ref that names anything but a snapshot (``/etc``, ``../x``),
or a snapshot whose files link out of the cache, is refused, never followed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hwaccel.kit import paths

REF = "main"
_REF_BYTES = 1024  # a commit hash is 40 characters: more is read no further


@dataclass(frozen=True)
class CachedSnapshot:
    """Where a hub id's snapshot is in the cache (``detail`` names the file found), or why
    none is used (``detail`` says why; ``refused`` when the cache holds one that escapes)."""

    snapshot: Path | None
    detail: str
    refused: bool = False


def repo_folder(hub_id: str, cache: Path) -> Path:
    """The cache's folder of a model repository (``models--org--name``), named as
    huggingface_hub's ``repo_folder_name`` does (whose module takes a tenth of a second to
    import: it is imported only when the folder exists)."""
    from huggingface_hub import constants

    return cache / constants.REPO_ID_SEPARATOR.join(["models", *hub_id.split("/")])


def find_snapshot(hub_id: str, wanted: tuple[str, ...]) -> CachedSnapshot:
    """The snapshot of ``hub_id`` that ``refs/main`` names (without a ref, the newest one)
    holding one of the ``wanted`` files, contained in the cache folder.

    Never raises: an absent or unreadable cache, a hostile ref or a snapshot linking out of
    the cache gives ``snapshot=None`` and a one-line ``detail``.
    """
    cache = paths.hf_hub_cache()
    repo = repo_folder(hub_id, cache)
    snapshots = repo / "snapshots"
    try:
        names = sorted(entry.name for entry in snapshots.iterdir())
    except OSError:
        return CachedSnapshot(None, f"{hub_id} has no snapshot in {cache}")
    ref_file = repo / "refs" / REF
    try:
        ref = _read_ref(ref_file, cache)
    except (OSError, UnicodeDecodeError):
        return CachedSnapshot(None, f"{ref_file} is unreadable: refused", refused=True)
    if ref is not None and not _plain_name(ref):
        return CachedSnapshot(None, f"{ref_file} names {ref[:80]!r}, not a snapshot folder "
                                    "of the cache: refused", refused=True)
    if ref in names:
        candidates = [ref]
    else:  # no ref, or a ref to a commit not downloaded: the newest snapshot
        candidates = sorted(names, key=lambda n: _mtime(snapshots / n), reverse=True)
    for revision in candidates:
        found = _cached_file(hub_id, revision, wanted, cache)
        if found is None:
            continue
        snapshot = snapshots / revision
        escape = _escape(snapshot, cache)
        if escape is not None:
            return CachedSnapshot(None, f"{escape} in the cached snapshot of {hub_id} lies "
                                        f"outside the cache {cache}: refused", refused=True)
        return CachedSnapshot(snapshot, f"{found.name} in the Hugging Face cache ({snapshot})")
    return CachedSnapshot(None, f"no snapshot of {hub_id} in {cache} holds "
                                f"{' or '.join(wanted)}")


def cached_repo_ids() -> list[str]:
    """The model repositories huggingface_hub's scan of the cache finds intact, sorted.

    Repositories it reports corrupted are left out. One repository it cannot read (a ref
    that is not text, a folder without permission) stops its whole scan: then the
    ``models--*`` folder names are listed instead, for the caller to check one by one. An
    absent cache folder, or a file in its place, gives an empty list.
    """
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    cache = paths.hf_hub_cache()
    try:
        info = scan_cache_dir(cache)
    except CacheNotFound:
        return []
    except (OSError, ValueError):  # ValueError: the cache is a file, or a ref is not text
        try:
            folders = [entry.name for entry in cache.iterdir() if entry.is_dir()]
        except OSError:
            return []
        prefix = "models--"
        return sorted(name[len(prefix):].replace("--", "/") for name in folders
                      if name.startswith(prefix))
    return sorted(repo.repo_id for repo in info.repos if repo.repo_type == "model")


def _read_ref(ref_file: Path, cache: Path) -> str | None:
    """The commit a ref file names (``None`` without one); a ref is a short text file in the
    cache: one that links out of it, or is not a regular file, raises OSError."""
    if not ref_file.exists() and not ref_file.is_symlink():
        return None
    if not ref_file.is_file() or not ref_file.resolve().is_relative_to(cache.resolve()):
        raise OSError(f"{ref_file} is not a file in the cache")
    with open(ref_file, "rb") as handle:
        return handle.read(_REF_BYTES).decode("utf-8").strip()


def _plain_name(ref: str) -> bool:
    """Whether a ref's content can only name a folder directly under ``snapshots``."""
    return bool(ref) and ref not in (".", "..") and not any(c in ref for c in "/\\\0:")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _cached_file(hub_id: str, revision: str, wanted: tuple[str, ...],
                 cache: Path) -> Path | None:
    """The first of ``wanted`` that huggingface_hub finds in the snapshot ``revision``."""
    from huggingface_hub import try_to_load_from_cache

    for name in wanted:
        try:
            found = try_to_load_from_cache(hub_id, name, cache_dir=cache, revision=revision)
        except ValueError:  # an id huggingface_hub rejects (``a--b``, ``a..b``)
            return None
        if isinstance(found, str):
            return Path(found)
    return None


def _escape(snapshot: Path, cache: Path) -> Path | None:
    """The first path of ``snapshot`` (itself included) that resolves outside ``cache``."""
    try:
        root = cache.resolve()
        if not snapshot.resolve().is_relative_to(root):
            return snapshot
        for folder, dirs, files in os.walk(snapshot):
            for name in (*dirs, *files):
                path = Path(folder, name)
                if not path.resolve().is_relative_to(root):
                    return path
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return snapshot
    return None
