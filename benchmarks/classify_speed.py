"""Classification speed: every model type of the installed transformers, from configs and names.

Run: .venv/bin/python benchmarks/classify_speed.py

Each sweep classifies every model type twice through the public path (`resolve_model` and the
plugins' claims): once from its config (`tiny:<model_type>`, signal config) and once from a
hub-style name alone (`some-org/<model-type>-base`, signal name, no network).

* cold: a fresh Python process with an empty hwaccel cache folder, so it reads transformers'
  auto tables from scratch; the time includes interpreter start-up, imports and plugin loading.
  Target (issue 3): under 3 s on a 2-core machine.
* warm: a second fresh process that reuses the cached tables, then the same sweep repeated in
  that process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

SWEEP = r"""
import json, sys, time
t0 = time.perf_counter()
from hwaccel.kit import autotables
from hwaccel.models.classify import classify
from hwaccel.plugins import load

plugins = load()
types = autotables.load().config_types
t1 = time.perf_counter()
def sweep():
    by_config = {t: classify(f"tiny:{t}", plugins).classification for t in types}
    by_name = {t: classify(f"some-org/{t.replace('_', '-')}-base", plugins).classification
               for t in types}
    return by_config, by_name
by_config, by_name = sweep()
t2 = time.perf_counter()
if "--repeat" in sys.argv:
    sweep()
t3 = time.perf_counter()
agree = sum(1 for t in types if (by_config[t].family, by_config[t].pipeline)
            == (by_name[t].family, by_name[t].pipeline))
json.dump({"types": len(types), "setup_s": t1 - t0, "sweep_s": t2 - t1,
           "repeat_s": t3 - t2, "labelled": sum(1 for c in by_config.values() if c.pipeline),
           "name_agrees": agree}, sys.stdout)
"""


def run_sweep(cache_dir: str, repeat: bool) -> tuple[float, dict]:
    """Run the sweep in a fresh process; return its wall time and its own figures."""
    env = {**os.environ, "HWACCEL_CACHE_DIR": cache_dir, "HF_HUB_OFFLINE": "1",
           "HF_HUB_CACHE": tempfile.mkdtemp(prefix="hwaccel-bench-hf-")}
    start = time.perf_counter()
    command = [sys.executable, "-c", SWEEP, *(["--repeat"] if repeat else [])]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - start, json.loads(proc.stdout)


def main() -> None:
    cache_dir = tempfile.mkdtemp(prefix="hwaccel-bench-cache-")
    cold_wall, cold = run_sweep(cache_dir, repeat=False)
    warm_wall, warm = run_sweep(cache_dir, repeat=True)
    models = 2 * cold["types"]
    print(f"{cold['types']} model types; each sweep classifies {models} models "
          f"(configs + names); {cold['labelled']} types have a pipeline label")
    print(f"cold: {cold_wall:.2f} s for the whole process (start-up + reading the tables "
          f"{cold['setup_s']:.2f} s, sweep {cold['sweep_s']:.2f} s = "
          f"{models / cold['sweep_s']:.0f} models/s); target < 3 s")
    print(f"warm: {warm_wall - warm['repeat_s']:.2f} s for the whole process (start-up + "
          f"cached tables {warm['setup_s']:.2f} s); a repeated sweep in the same process "
          f"{warm['repeat_s']:.3f} s = {models / warm['repeat_s']:.0f} models/s")
    print(f"name alone gives the config's family and pipeline for {cold['name_agrees']}/"
          f"{cold['types']} types ({cold['name_agrees'] / cold['types']:.0%})")


if __name__ == "__main__":
    main()
