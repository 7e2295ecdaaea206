"""Start-up of the real ``hwaccel list-plugins`` console script against a bare interpreter.

Usage::

    .venv/bin/python benchmarks/startup_ratio.py [--runs N] [--parts]

Times, in fresh processes and alternating so that machine load affects all alike, the
``hwaccel`` console script next to this interpreter (``hwaccel list-plugins``, its table, and
``hwaccel list-plugins --json``, both shown from the plugin index, which the first, untimed
round stores; ``hwaccel list-plugins --refresh``, a real load of the plugins that stores the
index again; and ``hwaccel list-plugins`` writing to a pseudo-terminal, where rich draws the
table) and ``python -c pass`` with the same interpreter (its ``site`` start-up
included: the anchor), with bytecode cached as Python does by default
(:func:`plugins_startup.user_env`). Prints each median and the ratio of each command's median
to the anchor's (goal: at most 5). With ``--parts``, also the steps of each path as ``python
-c`` lines, each adding one step to the one before: a hit (the command line's imports, the
index's lookup) and a real load.
"""

from __future__ import annotations

import argparse
import os
import pty
import statistics
import subprocess
import sys
import time
from pathlib import Path

from plugins_startup import user_env

HWACCEL = str(Path(sys.executable).with_name("hwaccel"))
COMMANDS = {"python -c pass": [sys.executable, "-c", "pass"],
            "hwaccel list-plugins": [HWACCEL, "list-plugins"],
            "hwaccel list-plugins --json": [HWACCEL, "list-plugins", "--json"],
            "hwaccel list-plugins --refresh": [HWACCEL, "list-plugins", "--refresh"],
            "hwaccel list-plugins, terminal": [HWACCEL, "list-plugins"]}
ON_A_TERMINAL = {"hwaccel list-plugins, terminal"}
"""Commands whose stdout is a pseudo-terminal (read until it closes), as a person runs them."""
LOOKUP = "from hwaccel.cli.plugin_index import PluginIndex; PluginIndex.open().lookup()"
LOAD = "import hwaccel.plugins as p; p.load(); import hwaccel.running.executors as e; e.installed()"
# --parts: what list-plugins does, step by step, each line adding one step to the one before
PARTS = {"hit: import hwaccel.cli": "import hwaccel.cli",
         "hit: + the index's lookup": f"import hwaccel.cli; {LOOKUP}",
         "load: import hwaccel": "import hwaccel",
         "load: + importlib.metadata": "import hwaccel, importlib.metadata",
         "load: + plugins.load()": "import hwaccel.plugins as p; p.load()",
         "load: + executors.installed()": LOAD,
         "load: + rich console and table": f"{LOAD}; import rich.console, rich.table"}


def time_once(command: list[str], terminal: bool = False) -> float:
    """Seconds one run of ``command`` takes, output discarded, its stdout a pseudo-terminal
    when ``terminal``; a failure stops the script."""
    if not terminal:
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=user_env())
        return time.perf_counter() - start
    reader, writer = pty.openpty()
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=writer, stderr=subprocess.DEVNULL, env=user_env())
    os.close(writer)
    try:
        while os.read(reader, 65536):
            pass
    except OSError:  # Linux reports the closed terminal as EIO
        pass
    returncode = process.wait()
    elapsed = time.perf_counter() - start
    os.close(reader)
    if returncode:
        raise subprocess.CalledProcessError(returncode, command)
    return elapsed


def main() -> int:
    """Time the commands alternately and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--parts", action="store_true",
                        help="also time list-plugins' steps as python -c lines, cumulatively")
    args = parser.parse_args()
    commands = {**COMMANDS, **({name: [sys.executable, "-c", code]
                                for name, code in PARTS.items()} if args.parts else {})}
    for name, command in commands.items():
        time_once(command, name in ON_A_TERMINAL)  # warm the file cache, store the index
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            times[name].append(time_once(command, name in ON_A_TERMINAL))
    medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    anchor = medians["python -c pass"]
    print(f"median of {args.runs} alternating runs ({sys.executable}):")
    for name, median in medians.items():
        print(f"  {name:<32} {median:6.1f} ms  {median / anchor:5.2f} x python -c pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
