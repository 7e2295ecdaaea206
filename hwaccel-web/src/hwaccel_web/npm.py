"""Pinned packages from the npm registry, fetched once into the hwaccel cache and verified.

A package is fetched with ``npm pack NAME@VERSION`` (npm's own client, so its configured
registry and proxy apply), its tarball checked against the pinned Subresource Integrity
string (``sha512-...``, the registry's ``dist.integrity``) before anything is unpacked, and the
wanted members extracted into ``<cache>/npm/<name>-<version>/``, refusing any member that would
land outside it. A folder is complete once its ``hwaccel-integrity.json`` exists; a lock file
keeps two processes from fetching the same package at once.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hwaccel.kit.failures import MISSING_DEPENDENCY, AttributedError

MARKER = "hwaccel-integrity.json"
_FETCH_TIMEOUT_S = 600


class NpmError(AttributedError):
    """A pinned package could not be fetched, verified or unpacked (the message says why):
    a dependency the backend needs is missing (``missing-dependency``)."""

    def __init__(self, message: str):
        super().__init__(MISSING_DEPENDENCY, message, stage="npm")


@dataclass(frozen=True)
class Pinned:
    """One package version and the integrity string its tarball must match."""

    name: str
    version: str
    integrity: str

    @property
    def spec(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def folder_name(self) -> str:
        """The cache folder's name (``@scope/name`` becomes ``scope-name``)."""
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}"


def integrity_of(path: Path, algorithm: str = "sha512") -> str:
    """The Subresource Integrity string of a file: ``sha512-<base64 digest>``."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return f"{algorithm}-{base64.b64encode(digest.digest()).decode('ascii')}"


def verify(path: Path, integrity: str) -> None:
    """Raise :class:`NpmError` unless ``path`` matches ``integrity`` (``sha512-...``)."""
    algorithm = integrity.split("-", 1)[0]
    if algorithm not in ("sha512", "sha384", "sha256"):
        raise NpmError(f"unsupported integrity algorithm {algorithm!r} in {integrity!r}")
    found = integrity_of(path, algorithm)
    if found != integrity:
        raise NpmError(f"{path.name} does not match its pinned integrity: expected "
                       f"{integrity}, got {found}; refusing to unpack it")


def extract(tarball: Path, target: Path, wanted: Callable[[str], bool]) -> list[str]:
    """Extract the members of ``tarball`` whose names ``wanted`` accepts into ``target``.

    Only regular files are extracted, each by name below ``target``; a member whose path is
    absolute or climbs out with ``..`` is refused. Returns the extracted names.
    """
    names = []
    root = target.resolve()
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if not member.isfile() or not wanted(member.name):
                continue
            destination = (root / member.name).resolve()
            if member.name.startswith("/") or not destination.is_relative_to(root):
                raise NpmError(f"{tarball.name} holds {member.name!r}, outside its folder; "
                               "refusing to unpack it")
            destination.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            with source, open(destination, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            os.chmod(destination, 0o644)
            names.append(member.name)
    return names


def npm_pack(pinned: Pinned, into: Path) -> Path:
    """Download the package's tarball with ``npm pack`` into ``into``; return its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise NpmError(f"npm is not installed, so {pinned.spec} cannot be fetched from the npm "
                       "registry (install npm, or name a folder that holds the package)")
    try:
        proc = subprocess.run([npm, "pack", pinned.spec, "--json", "--pack-destination",
                               str(into)], capture_output=True, text=True, check=False,
                              stdin=subprocess.DEVNULL, cwd=into, timeout=_FETCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise NpmError(f"npm pack {pinned.spec} took over {_FETCH_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise NpmError(f"npm pack {pinned.spec} failed ({proc.returncode}): "
                       f"{lines[-1] if lines else 'no output'}")
    try:
        filename = json.loads(proc.stdout)[0]["filename"]
    except (ValueError, LookupError, TypeError):
        raise NpmError(f"npm pack {pinned.spec} printed no tarball name") from None
    tarball = into / Path(filename).name
    if not tarball.is_file():
        raise NpmError(f"npm pack {pinned.spec} wrote no {tarball.name}")
    return tarball


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # Windows: no lock, the marker still guards completeness
            pass
        yield


def cache_root() -> Path:
    """``hwaccel.kit.paths.cache_dir()/npm``."""
    from hwaccel.kit.paths import cache_dir

    return cache_dir() / "npm"


def fetched(pinned: Pinned, wanted: Callable[[str], bool],
            unpack: Callable[[Path, Path], None] | None = None) -> Path:
    """The package's folder in the cache, fetched, verified and unpacked on first use.

    :param wanted: which tarball members to keep (names start with ``package/``).
    :param unpack: a further step on the extracted folder (``(folder, tarball)``) before it
        counts as complete, such as decompressing a shipped binary.
    """
    folder = cache_root() / pinned.folder_name
    marker = folder / MARKER
    if marker.is_file():
        return folder
    with _locked(cache_root() / f"{pinned.folder_name}.lock"):
        if marker.is_file():
            return folder
        with tempfile.TemporaryDirectory(prefix="hwaccel-npm-", dir=cache_root()) as tmp:
            work = Path(tmp)
            tarball = npm_pack(pinned, work)
            verify(tarball, pinned.integrity)
            staging = work / "unpacked"
            extract(tarball, staging, wanted)
            if unpack is not None:
                unpack(staging, tarball)
            (staging / MARKER).write_text(json.dumps(
                {"package": pinned.name, "version": pinned.version,
                 "integrity": pinned.integrity}), encoding="utf-8")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(staging, folder)
    return folder
