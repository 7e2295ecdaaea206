"""Start-up time of ``hwaccel list-plugins``: this tree against a baseline commit.

Usage::

    .venv/bin/python benchmarks/plugins_startup.py [--baseline REF] [--runs N]

The baseline's sources are checked out into a temporary git worktree and put first on
``PYTHONPATH`` (the installed distributions' entry points name the same modules), so both
trees run in the same interpreter with the same installed libraries. Runs alternate between
the two trees, so machine load affects both alike; the script prints each tree's median
and the ratio this tree / baseline. The timed processes cache bytecode as Python does by
default (:func:`user_env`), whatever this shell's ``PYTHONDONTWRITEBYTECODE`` says.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("core/src", "plugins/*/src", "hwaccel-*/src", "pipelines/*/src")


def user_env(**extra: str) -> dict[str, str]:
    """This environment as a user's Python would start in it: bytecode cached (without
    ``PYTHONDONTWRITEBYTECODE`` every start compiles hwaccel's modules again), plus ``extra``."""
    env = {name: value for name, value in os.environ.items()
           if name != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def source_path(root: Path) -> str:
    """``PYTHONPATH`` holding every distribution's ``src`` folder of a checkout."""
    return os.pathsep.join(str(p) for pattern in SOURCES for p in sorted(root.glob(pattern)))


def time_once(pythonpath: str | None) -> float:
    """Seconds one ``hwaccel list-plugins --json`` takes, in a fresh interpreter."""
    env = user_env(PYTHONPATH=pythonpath) if pythonpath else user_env()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hwaccel", "list-plugins", "--json"], check=True,
                   capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> int:
    """Time both trees alternately and print the medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="660e40b", help="git ref to compare against")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base),
                        args.baseline], check=True)
        try:
            base_path = source_path(base)
            time_once(None), time_once(base_path)  # warm the file cache
            now, then = [], []
            for _ in range(args.runs):
                now.append(time_once(None))
                then.append(time_once(base_path))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           check=False)
    now_ms, then_ms = statistics.median(now) * 1e3, statistics.median(then) * 1e3
    print(f"list-plugins start-up, median of {args.runs} runs: this tree {now_ms:.0f} ms, "
          f"{args.baseline} {then_ms:.0f} ms, ratio {now_ms / then_ms:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
