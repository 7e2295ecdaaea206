"""Write the version in ``VERSION`` into every distribution's ``pyproject.toml``.

``VERSION`` (the repository root) is the one place to edit: this rewrites each pyproject's
``version`` and every pin of one of the repository's distributions on another
(``hwaccel-core==X``), which must match exactly since they are released together.
``make install`` runs it; ``--check`` only reports what differs (exit 1).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION_LINE = re.compile(r'^(version\s*=\s*")[^"]*(")', re.MULTILINE)
INTERNAL_PIN = re.compile(r'("hwaccel(?:-[a-z0-9-]+)?==)[^";\s]+')


def pyprojects() -> list[Path]:
    """Every distribution's ``pyproject.toml``."""
    found = [ROOT / "pyproject.toml", ROOT / "core" / "pyproject.toml"]
    for pattern in ("plugins/*/pyproject.toml", "pipelines/*/pyproject.toml",
                    "hwaccel-*/pyproject.toml"):
        found += sorted(ROOT.glob(pattern))
    return found


def synced(text: str, version: str) -> str:
    """``text`` (a pyproject) with its version and internal pins set to ``version``."""
    text = VERSION_LINE.sub(lambda m: m.group(1) + version + m.group(2), text, count=1)
    return INTERNAL_PIN.sub(lambda m: m.group(1) + version, text)


def main(argv: list[str]) -> int:
    """Sync (or with ``--check`` compare) every pyproject with ``VERSION``."""
    version = (ROOT / "VERSION").read_text(encoding="utf-8").strip()
    if not re.fullmatch(r"\d+(\.\d+)*([abc]|rc)?\d*(\.(post|dev)\d+)?", version):
        print(f"sync_version: error: VERSION holds {version!r}, not a version",
              file=sys.stderr)
        return 2
    stale = []
    for path in pyprojects():
        text = path.read_text(encoding="utf-8")
        if synced(text, version) != text:
            stale.append(path.relative_to(ROOT))
            if "--check" not in argv:
                path.write_text(synced(text, version), encoding="utf-8")
    if stale and "--check" in argv:
        print(f"sync_version: not at {version}: {', '.join(map(str, stale))} "
              "(run python3 .ci/sync_version.py)", file=sys.stderr)
        return 1
    for path in stale:
        print(f"sync_version: {path} set to {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
