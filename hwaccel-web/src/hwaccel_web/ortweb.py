"""onnxruntime-web: the pinned npm release in the hwaccel cache, or a folder the user names.

``HWACCEL_ORT_WEB_DIR`` names a folder holding the files below (an unpacked
``onnxruntime-web`` package, or its ``dist/``); without it, :data:`PINNED` is fetched from the
npm registry on first use (:mod:`hwaccel_web.npm`, integrity checked) and kept under
``<cache>/npm/``. Only the files the page loads are kept: the ES module build and the
WebAssembly binary with the JSEP bridge that carries the WebGPU and WebNN providers.
"""

from __future__ import annotations

import os
from pathlib import Path

from hwaccel_web.npm import NpmError, Pinned, fetched

FOLDER_ENV = "HWACCEL_ORT_WEB_DIR"
PINNED = Pinned("onnxruntime-web", "1.30.0",
                "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMD"
                "s1SigqR4CXAfKYQ==")
MODULE = "ort.min.mjs"
FILES = (MODULE, "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm")


def _dist(folder: Path) -> Path | None:
    for candidate in (folder, folder / "dist", folder / "package" / "dist"):
        if all((candidate / name).is_file() for name in FILES):
            return candidate
    return None


def ort_web_dir() -> Path:
    """The folder that holds :data:`FILES`, fetching the pinned release when needed.

    :raises NpmError: the named folder lacks the files, or the fetch failed.
    """
    named = os.environ.get(FOLDER_ENV)
    if named:
        found = _dist(Path(named).expanduser())
        if found is None:
            raise NpmError(f"{FOLDER_ENV}={named} holds no onnxruntime-web build ("
                           f"{', '.join(FILES)} in it or in its dist/)")
        return found
    folder = fetched(PINNED, lambda name: name.removeprefix("package/dist/") in FILES)
    found = _dist(folder)
    if found is None:
        raise NpmError(f"{PINNED.spec} in {folder} lacks {', '.join(FILES)}")
    return found


def ort_web_source() -> str:
    """Where onnxruntime-web comes from, for the records: the named folder or the pin."""
    named = os.environ.get(FOLDER_ENV)
    return f"{FOLDER_ENV}={named}" if named else f"npm {PINNED.spec}"
