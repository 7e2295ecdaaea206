"""The matrix on a local three-node Ray cluster, against the local executor: times and memory.

Starts a Ray cluster of this machine on loopback (``ray.cluster_utils.Cluster``; every Ray
file in a temporary folder, removed at the end; token authentication off; only the processes
it started are stopped): a head whose hwaccel loads no plugin, ``cpu-node`` whose hwaccel
blocks the OpenVINO plugin and ``openvino-node`` whose hwaccel blocks the CPU plugin, each
with the resources that ``hwaccel-ray node --dry-run`` computes in that node's environment.
Then it runs ``hwaccel matrix --executor ray --address ...`` on the models given, the same
cells with the local executor, and prints both outputs and these figures: the cluster's start
time, the resident memory of its processes (idle, and the peak during the run, sampled every
0.5 s) and the wall time of each matrix.

    .venv/bin/python benchmarks/ray_matrix.py [--models tiny:bert minilm] [--backends ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

NODES = {"cpu-node": {"HWACCEL_DISABLE_PLUGINS": "openvino"},
         "openvino-node": {"HWACCEL_DISABLE_PLUGINS": "cpu"}}


def tree_rss_mb() -> float:
    """Resident memory of this process's descendants, in MiB."""
    total = 0
    for proc in psutil.Process().children(recursive=True):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def node_args(root: Path, name: str, env: dict[str, str]) -> dict:
    """``add_node`` arguments for a node whose hwaccel runs in ``env``."""
    folder = root / "nodes" / name
    (folder / "tmp").mkdir(parents=True)
    env = {"HWACCEL_CACHE_DIR": str(folder / "cache"), "TMPDIR": str(folder / "tmp"),
           "OMP_NUM_THREADS": "1", **env}
    proc = subprocess.run([sys.executable, "-m", "hwaccel_ray.cli", "node", "--head",
                           "--dry-run", "--json", "--node-name", name], capture_output=True,
                          text=True, check=True, env={**os.environ, **env})
    offer = json.loads(proc.stdout)
    return {"node_ip_address": "127.0.0.1", "node_name": name, "include_dashboard": False,
            "temp_dir": str(root / "ray"), "num_cpus": 1, "num_gpus": offer["num_gpus"],
            "resources": offer["resources"], "env_vars": env}


def timed_matrix(args: list[str], env: dict[str, str]) -> tuple[float, float, str, str]:
    """Run ``hwaccel matrix ARGS``: (wall s, peak MiB of this tree, stdout, stderr)."""
    peak = [tree_rss_mb()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak[0] = max(peak[0], tree_rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hwaccel", "matrix", *args],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"hwaccel matrix failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, peak[0], proc.stdout, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny:bert", "minilm"])
    parser.add_argument("--backends", nargs="+", default=["cpu", "openvino", "cuda"])
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hwaccel-ray-bench-"))
    (root / "ray").mkdir()
    os.environ.update({"RAY_TMPDIR": str(root), "RAY_AUTH_MODE": "disabled",
                       "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
                       "HWACCEL_CACHE_DIR": str(root / "driver-cache")})
    from ray.cluster_utils import Cluster

    cells = ["--models", *options.models, "--backends", *options.backends]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args=node_args(
        root, "head", {"HWACCEL_LOAD_PLUGINS": ""}))
    try:
        for name, node_env in NODES.items():
            cluster.add_node(**node_args(root, name, node_env))
        started = time.perf_counter() - start
        idle = tree_rss_mb()
        ray_wall, ray_peak, out, err = timed_matrix(
            [*cells, "--executor", "ray", "--address", cluster.address, "--db",
             str(root / "ray.duckdb")], env)
        print(err + out)
    finally:
        cluster.shutdown()
    local_wall, local_peak, out, err = timed_matrix(
        [*cells, "--db", str(root / "local.duckdb")], env)
    print(err + out)
    shutil.rmtree(root, ignore_errors=True)
    print(f"cluster of 3 nodes started in {started:.1f} s; its processes hold {idle:,.0f} MiB "
          "idle")
    print(f"ray executor:   {ray_wall:6.1f} s wall, peak {ray_peak:,.0f} MiB (cluster, driver "
          "and jobs)")
    print(f"local executor: {local_wall:6.1f} s wall, peak {local_peak:,.0f} MiB")


if __name__ == "__main__":
    main()
