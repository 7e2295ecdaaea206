"""End-to-end wall time of ``hwaccel benchmark MODEL --backend cpu --json``: this tree against
a baseline commit.

Usage::

    .venv/bin/python benchmarks/benchmark_e2e.py [--baseline REF] [--runs N] [--model M]

Each run is a fresh ``python -m hwaccel benchmark`` process, timed from its start to its end:
the command line's start-up, detection, the job zygote's preload, the job itself, storing the
row, and every exit. The baseline's sources are checked out into a temporary git worktree and
put first on ``PYTHONPATH`` (as :mod:`plugins_startup` does), so both trees use the same
interpreter and libraries. Each tree gets its own temporary ``XDG_CACHE_HOME`` (its history
database, detection cache and tiny configs; the two trees' schemas differ), made warm by one
untimed run before the timed ones, which alternate between the trees so that machine load
affects both alike; bytecode is cached as Python does by default
(:func:`plugins_startup.user_env`). A run whose benchmark did not succeed stops the script.
It prints each tree's median and minimum, the median of the job's own wall time (the part
the benchmark settings decide), every run, and the ratios this tree / baseline of the medians
and of the minimums (the least disturbed runs, when other work shares the machine; ``--nice
-10`` run as root makes the timed processes yield less to it). Then the
job zygote's exit on its own: each tree's zygote, preloaded for benchmark jobs, is timed from
the close of its stdin to its end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plugins_startup import ROOT, source_path, user_env


def time_once(command: list[str], env: dict[str, str], niceness: int) -> tuple[float, float]:
    """Run one benchmark (``niceness`` added to its process's): its wall seconds end to end,
    and the job's own wall seconds."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False,
                          preexec_fn=lambda: os.nice(niceness))
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"benchmark_e2e: {' '.join(command[2:])} exited with {done.returncode}: "
                 f"{done.stderr.strip()[-500:]}")
    results = json.loads(done.stdout)["results"]
    failed = [r for r in results if not r["success"]]
    if not results or failed:
        sys.exit(f"benchmark_e2e: the benchmark did not succeed: "
                 f"{failed[0]['error'] if failed else 'no result'}")
    return wall, sum(r["wall_time_s"] for r in results)


def zygote_exit_s(env: dict[str, str], folder: Path, niceness: int) -> float:
    """Seconds a job zygote of ``benchmark`` jobs takes to end once its stdin closes, after
    its preload and one job (of an unknown kind: its child fails at once) have finished."""
    zygote = subprocess.Popen([sys.executable, "-m", "hwaccel.running.zygote", "benchmark"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=env,
                              preexec_fn=lambda: os.nice(niceness))
    job = {"kind": "none", "payload": {}, "result": str(folder / "result.json"),
           "log": str(folder / "log.txt"), "cpus": None}
    zygote.stdin.write((json.dumps(job) + "\n").encode())
    zygote.stdin.flush()
    for answer in ("started", "exited"):  # the preload is done once the job has started
        if answer not in json.loads(zygote.stdout.readline() or "{}"):
            sys.exit(f"benchmark_e2e: the zygote did not answer {answer!r}")
    start = time.perf_counter()
    zygote.stdin.close()
    zygote.wait()
    return time.perf_counter() - start


def main() -> int:
    """Time both trees alternately and print the medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="98c608d", help="git ref to compare against")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per tree")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--zygote-exits", type=int, default=3,
                        help="times each tree's zygote exit is timed on its own")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness added to the timed processes: negative (root only) "
                             "lets other work on the machine disturb them less")
    args = parser.parse_args()
    command = [sys.executable, "-m", "hwaccel", "benchmark", args.model, "--backend",
               args.backend, "--json"]
    with tempfile.TemporaryDirectory(prefix="hwaccel-e2e-") as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base),
                        args.baseline], check=True)
        try:
            envs = {"this tree": user_env(XDG_CACHE_HOME=str(Path(tmp, "cache-now"))),
                    args.baseline: user_env(XDG_CACHE_HOME=str(Path(tmp, "cache-base")),
                                            PYTHONPATH=source_path(base))}
            for env in envs.values():
                time_once(command, env, args.nice)  # warm: caches, database, the disk's file cache
            exits: dict[str, list[float]] = {name: [] for name in envs}
            for _ in range(args.zygote_exits):
                for name, env in envs.items():
                    exits[name].append(zygote_exit_s(env, Path(tmp), args.nice))
            walls: dict[str, list[float]] = {name: [] for name in envs}
            jobs: dict[str, list[float]] = {name: [] for name in envs}
            for _ in range(args.runs):
                for name, env in envs.items():
                    wall, job = time_once(command, env, args.nice)
                    walls[name].append(wall)
                    jobs[name].append(job)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           check=False)
    print(f"hwaccel benchmark {args.model} --backend {args.backend} --json, "
          f"{args.runs} runs each, alternating, niceness {args.nice:+d}:")
    for name in envs:
        print(f"  {name:>10}: median {statistics.median(walls[name]):6.2f} s, "
              f"min {min(walls[name]):6.2f} s (the job itself: median "
              f"{statistics.median(jobs[name]):5.2f} s)")
    for name in envs:
        print(f"  {name:>10} runs: {' '.join(f'{wall:.2f}' for wall in walls[name])} s")
    now, then = (statistics.median(walls[name]) for name in envs)
    fastest_now, fastest_then = (min(walls[name]) for name in envs)
    print(f"  ratio this tree / {args.baseline}: medians {now / then:.3f}, minimums "
          f"{fastest_now / fastest_then:.3f} (goal: at most 0.85)")
    if args.zygote_exits:
        print(f"the job zygote's exit once its stdin closes (torch and transformers loaded), "
              f"median of {args.zygote_exits}:")
        for name in envs:
            print(f"  {name:>10}: {statistics.median(exits[name]):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
