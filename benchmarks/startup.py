"""Start-up budget: `hwaccel --help` and `hwaccel list-plugins` wall time and heavy imports.

Run: .venv/bin/python benchmarks/startup.py [--runs N]
Prints the median and max wall time of each command over N fresh processes, the ratio to a
bare `python -c pass` (the anchor), and which heavy modules each command imported (none is
the budget).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "transformers", "openvino", "onnxruntime")
PROBE = ("import runpy, sys; sys.argv = ['hwaccel', *{args!r}]\n"
         "try:\n    runpy.run_module('hwaccel', run_name='__main__')\nexcept SystemExit:\n"
         "    pass\nprint('HEAVY=' + ','.join(m for m in {heavy!r} if m in sys.modules))")


def timed(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    anchor = statistics.median(timed([sys.executable, "-c", "pass"], runs))
    print(f"anchor: python -c pass  median {anchor * 1000:.0f} ms")
    for args in (["--help"], ["list-plugins"]):
        times = timed([sys.executable, "-m", "hwaccel", *args], runs)
        probe = subprocess.run([sys.executable, "-c", PROBE.format(args=args, heavy=HEAVY)],
                               capture_output=True, text=True).stdout
        heavy = [line for line in probe.splitlines() if line.startswith("HEAVY=")]
        print(f"hwaccel {' '.join(args):<13} median {statistics.median(times) * 1000:.0f} ms "
              f"max {max(times) * 1000:.0f} ms  = {statistics.median(times) / anchor:.1f}x "
              f"anchor  heavy imports: {heavy[0][6:] or 'none' if heavy else '?'}")


if __name__ == "__main__":
    main()
