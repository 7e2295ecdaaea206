"""Print pip constraints that pin every third-party requirement to its declared minimum.

Reads the ``dependencies`` and extras (not ``dev``) of every ``pyproject.toml`` of the
repository and writes ``name==minimum`` for each ``name>=minimum``; the repository's own
distributions (``hwaccel``, ``hwaccel-*``) are left out. Used by ``.ci/minimums``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib
from sync_version import pyprojects  # the same folder: scripts run as .ci/NAME.py

LOWER_BOUND = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)[^;]*?>=\s*([^,;\s]+)")


def runtime_requirements(path: Path) -> list[str]:
    """The requirements a user's install can pull: dependencies and extras but ``dev``."""
    project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    return [*project.get("dependencies", []),
            *(req for name, reqs in extras.items() if name != "dev" for req in reqs)]


def minimums() -> dict[str, str]:
    """``{distribution: declared minimum}`` over every pyproject (third-party only)."""
    found: dict[str, str] = {}
    for path in pyprojects():
        for requirement in runtime_requirements(path):
            match = LOWER_BOUND.match(requirement)
            if match and not re.match(r"hwaccel($|-)", match.group(1).lower()):
                found[match.group(1).lower()] = match.group(2)
    return found


def main() -> int:
    """Print the constraints, one ``name==version`` a line."""
    for name, version in sorted(minimums().items()):
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
