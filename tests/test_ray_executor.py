"""``hwaccel matrix --executor ray`` on a real local Ray cluster (hwaccel-ray).

One cluster for the module (``ray.cluster_utils.Cluster``: a head and two nodes, more added
by the node-loss test), on loopback only, with every Ray file under the test's own folder
and token authentication off, started and stopped by this module alone (never ``ray
stop``). Each node's raylet gets its own environment: the node whose hwaccel blocks the
OpenVINO plugin offers only the CPU backend, the one that blocks the CPU plugin only
OpenVINO's CPU device, and the head loads no plugin at all. Its resources come from the real
``hwaccel-ray node --dry-run`` run in that same environment, as a real node computes them.
The matrix runs as a real ``hwaccel matrix`` process, the driver, which alone writes DuckDB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psutil
import pytest

from conftest import make_plugin_dist, pythonpath_env, run_cli

FAST = ("--iterations", "3", "--min-seconds", "0", "--warmup", "1")
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_USAGE_STATS_ENABLED": "0"}
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}

REMOTE_BACKENDS = ("quick", "slow", "solo")
REMOTE = '''\
"""A test backend for the Ray executor: it records where its benchmark runs; on the node
the test calls "doomed", the "slow" and "solo" backends wait there until it is removed."""

import os
import time

from hwaccel import BenchmarkResult, HardwareInfo, TemplatePart, hookimpl

NAME = "@NAME@"
SNIPPETS = {
    "imports": "import torch",
    "availability": 'DEVICE = "cpu"\\n\\n\\ndef unavailable_reason():\\n    return None',
    "placement": ("def place_model(model):\\n    return model\\n\\n\\n"
                  "def place_inputs(inputs):\\n    return inputs"),
    "synchronize": "def synchronize():\\n    pass",
    "cleanup": "def release(model):\\n    del model",
    "tolerance": "ATOL = 1e-5\\nRTOL = 1e-4",
}


@hookimpl
def hwaccel_detect():
    return [HardwareInfo(backend=NAME, device=NAME, name=f"test {NAME}", available=True,
                         compute_resource=f"{NAME}-unit")]


@hookimpl
def hwaccel_template(backend):
    if backend != NAME:
        return None
    return TemplatePart(owner="backend", name=NAME, snippets=SNIPPETS)


@hookimpl
def hwaccel_benchmark(request):
    if request.hardware.backend != NAME:
        return None
    from hwaccel.kit.measure import summarize, time_calls

    role = os.environ["HWACCEL_TEST_NODE"]
    mark = os.path.join(os.environ["HWACCEL_TEST_MARKS"], f"{NAME}-{role}-{os.getpid()}")
    with open(mark + ".tmp", "w") as out:
        out.write(str(os.getpid()))
    os.replace(mark + ".tmp", mark)
    if role == "doomed" and NAME != "quick":
        time.sleep(600)
    timing = time_calls(lambda: time.sleep(0.001), warmup=1, min_iterations=3,
                        min_seconds=0.0, max_seconds=1.0)
    return BenchmarkResult(model=request.model, backend=NAME, device=request.hardware.device,
                           success=True, cold_ms=timing.cold_ms,
                           iterations=len(timing.times_ms), details={"role": role},
                           **summarize(timing.times_ms, 1))
'''


def rows(db: Path, sql: str = "SELECT * FROM hardware_results ORDER BY id") -> list[dict]:
    with duckdb.connect(str(db), read_only=True) as conn:
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def listeners() -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening socket of this test's processes."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            name = proc.name()
            found += [(name, c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet")
                      if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            continue
    return found


def assert_ray_on_loopback_only() -> None:
    found = listeners()
    assert any(name in ("gcs_server", "raylet") for name, _, _ in found), found
    outside = [entry for entry in found if entry[1] not in LOOPBACK]
    assert not outside, f"listening beyond loopback: {outside}"


class LocalCluster:
    """The module's Ray cluster and the environment of each of its nodes.

    :param nodes: node name -> extra environment; the first is the head. Their resources
        are computed at once (in parallel), then the nodes start.
    """

    def __init__(self, root: Path, nodes: dict[str, dict[str, str]]):
        from concurrent.futures import ThreadPoolExecutor

        from ray.cluster_utils import Cluster

        self.root = root
        self.marks = root / "marks"
        self.marks.mkdir()
        self.plugins = make_plugin_dist(
            root / "site", "hwaccel-test-remote",
            {name: f"hwaccel_test_{name}" for name in REMOTE_BACKENDS},
            {f"hwaccel_test_{n}.py": REMOTE.replace("@NAME@", n) for n in REMOTE_BACKENDS})
        with ThreadPoolExecutor(len(nodes)) as pool:
            args = dict(zip(nodes, pool.map(lambda item: self.node_args(*item), nodes.items()),
                            strict=True))
        head, *others = nodes
        self.cluster = Cluster(initialize_head=True, head_node_args={
            **args[head], "_system_config": {"health_check_period_ms": 1000,
                                             "health_check_failure_threshold": 3}})
        self.nodes: dict[str, Any] = {head: self.cluster.head_node}
        self.resources = {name: a["resources"] for name, a in args.items()}
        for name in others:
            self.nodes[name] = self.cluster.add_node(**args[name])

    def node_args(self, name: str, extra: dict[str, str]) -> dict[str, Any]:
        """``add_node`` arguments: the node's own cache and temp folder in its environment,
        and the resources that ``hwaccel-ray node`` computes in that environment."""
        tmp = self.root / "nodes" / name
        (tmp / "tmp").mkdir(parents=True)
        env = {"HWACCEL_CACHE_DIR": str(tmp / "cache"), "TMPDIR": str(tmp / "tmp"),
               "OMP_NUM_THREADS": "1", "HWACCEL_TEST_NODE": name,
               "HWACCEL_TEST_MARKS": str(self.marks), **extra}
        proc = subprocess.run([sys.executable, "-m", "hwaccel_ray.cli", "node", "--head",
                               "--dry-run", "--json", "--node-name", name],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, **env})
        assert proc.returncode == 0, proc.stderr
        offer = json.loads(proc.stdout)
        return {"node_ip_address": "127.0.0.1", "node_name": name, "include_dashboard": False,
                "temp_dir": str(self.root / "ray"), "num_cpus": 1,
                "num_gpus": offer["num_gpus"], "resources": offer["resources"],
                "env_vars": env}

    def add(self, name: str, **extra: str) -> None:
        """Add a node with ``extra`` in its environment."""
        args = self.node_args(name, extra)
        self.resources[name] = args["resources"]
        self.nodes[name] = self.cluster.add_node(**args)

    def node_id(self, name: str) -> str:
        return self.nodes[name].node_id


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A head (no plugins), ``cpu-node`` (OpenVINO blocked) and ``openvino-node`` (CPU
    blocked), on loopback; removed at the end, with every process it started."""
    root = tmp_path_factory.mktemp("ray")
    (root / "ray").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**RAY_ENV, "RAY_TMPDIR": str(root)}.items():
            patch.setenv(name, value)
        local = LocalCluster(root, {"head": {"HWACCEL_LOAD_PLUGINS": ""},
                                    "cpu-node": {"HWACCEL_DISABLE_PLUGINS": "openvino"},
                                    "openvino-node": {"HWACCEL_DISABLE_PLUGINS": "cpu"}})
        try:
            assert local.resources["head"] == {}
            assert "hwaccel_cpu" in local.resources["cpu-node"]
            assert "hwaccel_openvino" not in local.resources["cpu-node"]
            assert "hwaccel_openvino" in local.resources["openvino-node"]
            assert "hwaccel_cpu" not in local.resources["openvino-node"]
            yield local
        finally:
            local.cluster.shutdown()


def driver_env() -> dict[str, str]:
    """The ``hwaccel matrix`` driver's environment: the test's, without the loopback switch
    (the executor sets it itself for a loopback address)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    return {**env, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}


def matrix_args(cluster: LocalCluster, db: Path, *extra: str) -> list[str]:
    return ["matrix", "--executor", "ray", "--address", cluster.cluster.address,
            "--db", str(db), *FAST, *extra]


def test_resources_come_from_the_detected_devices():
    from hwaccel.types import HardwareInfo
    from hwaccel_ray.resources import cell_demand, gpu_count, node_resources, offers

    hardware = [
        HardwareInfo(backend="cpu", device="cpu", name="x86", available=True),
        HardwareInfo(backend="openvino", device="CPU", name="x86", available=True),
        HardwareInfo(backend="openvino", device="GPU.0", name="Arc", available=True,
                     compute_resource="openvino:GPU.0"),
        HardwareInfo(backend="cuda", device="cuda:0", name="H100", available=True,
                     compute_resource="gpu:0000:01:00.0"),
        HardwareInfo(backend="cuda", device="cuda:1", name="H100", available=True,
                     compute_resource="gpu:0000:02:00.0"),
        HardwareInfo(backend="qnn", device="qnn", name="qnn", available=False, reason="no"),
    ]
    resources = node_resources(hardware)
    assert resources == {"hwaccel_cpu": 1, "hwaccel_cpu__cpu": 1, "hwaccel_host_cpu": 1,
                         "hwaccel_openvino": 2, "hwaccel_openvino__CPU": 1,
                         "hwaccel_openvino__GPU_0": 1, "hwaccel_cuda": 2,
                         "hwaccel_cuda__cuda_0": 1, "hwaccel_cuda__cuda_1": 1}
    assert gpu_count(hardware) == 2
    # host-CPU devices share the node's cores, so their cells also take the host unit
    assert cell_demand(hardware[1]) == {"hwaccel_openvino__CPU": 1, "hwaccel_host_cpu": 1}
    assert cell_demand(hardware[3]) == {"hwaccel_cuda__cuda_0": 1}
    assert offers(resources, cell_demand(hardware[4]))
    assert not offers({"hwaccel_cpu": 1}, cell_demand(hardware[0]))


def test_executor_errors_are_one_line(tmp_db, monkeypatch):
    for args, needle in (
            (("--executor", "warp"), "unknown executor 'warp' (installed executors: local, ray"),
            (("--address", "127.0.0.1:6379"), "--address needs an executor that runs cells"),
            (("--executor", "ray", "--workers", "2"), "--workers is for the local executor"),
            (("--executor", "ray", "--address", "127.0.0.1:9"),
             "cannot connect to the Ray cluster at 127.0.0.1:9: nothing answers there")):
        proc = run_cli("matrix", "--models", "tiny:bert", "--db", str(tmp_db), *args,
                       env=RAY_ENV)
        assert proc.returncode in (1, 2), (args, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    # Without hwaccel-ray installed, the executor named 'ray' says what to install.
    import importlib.metadata

    from hwaccel.errors import UsageError
    from hwaccel.running import executors

    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [
        ep for ep in real(**kw) if ep.name != "ray"])
    with pytest.raises(UsageError, match=r"executor 'ray' is not installed: install "
                                         r"hwaccel-ray \(pip install 'hwaccel\[ray\]'\)"):
        executors.load("ray")


def test_list_plugins_shows_executors_without_importing_ray():
    probe = ("import runpy, sys\nsys.argv = ['hwaccel', 'list-plugins', '--json']\n"
             "try:\n    runpy.run_module('hwaccel', run_name='__main__')\n"
             "except SystemExit:\n    pass\nprint('RAY=' + str('ray' in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    listing, flag = proc.stdout.rsplit("RAY=", 1)
    assert flag.strip() == "False", proc.stdout
    found = {e["name"]: e for e in json.loads(listing)["executors"]}
    assert found["local"]["distribution"] == "hwaccel-core"
    assert found["ray"] == {"name": "ray", "distribution": "hwaccel-ray", "version": "0.1.0",
                            "target": "hwaccel_ray.executor:RayExecutor"}


NODES_QUERY = """
import json, ray
ray.init(address={address!r}, logging_level="ERROR", log_to_driver=False)
print(json.dumps([[n["NodeName"], n["Resources"]] for n in ray.nodes() if n["Alive"]]))
"""


@pytest.mark.slow
def test_hwaccel_ray_node_starts_ray_with_the_detected_devices(tmp_path_factory):
    import socket

    tmp_path = tmp_path_factory.mktemp("node")  # short: Ray's socket paths live under it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "ray").mkdir()
    env = {**os.environ, **RAY_ENV, "RAY_TMPDIR": str(tmp_path),
           "HWACCEL_CACHE_DIR": str(tmp_path / "cache"),
           "HWACCEL_DISABLE_PLUGINS": "openvino,web,qnn"}
    node = subprocess.Popen(
        [sys.executable, "-m", "hwaccel_ray.cli", "node", "--head", "--node-ip-address",
         "127.0.0.1", "--port", str(port), "--node-name", "solo-head", "--",
         "--block", "--include-dashboard", "false"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert node.stdout is not None
        first = node.stdout.readline()
        assert first.startswith("hwaccel-ray: node solo-head offers cpu:cpu; absent: "), first
        for line in node.stdout:  # ray start's own output, until the node is up
            if "--block" in line:
                break
        helpers = psutil.Process(node.pid).children(recursive=True)
        query = subprocess.run([sys.executable, "-c",
                                NODES_QUERY.format(address=f"127.0.0.1:{port}")],
                               capture_output=True, text=True, timeout=120, env=env)
        assert query.returncode == 0, query.stderr[-2000:]
        ((name, resources),) = json.loads(query.stdout.splitlines()[-1])
        assert name == "solo-head"
        assert {k: v for k, v in resources.items() if k.startswith("hwaccel")} == {
            "hwaccel_cpu": 1, "hwaccel_cpu__cpu": 1, "hwaccel_host_cpu": 1}
        assert resources.get("GPU", 0) == 0
        assert_ray_on_loopback_only()
    finally:
        node.terminate()  # ray start --block stops the processes it started
        node.wait(timeout=60)
    _, alive = psutil.wait_procs(helpers, timeout=30)
    assert not alive, [p.name() for p in alive]


@pytest.mark.slow
def test_cells_run_only_on_nodes_offering_their_backend(ray_cluster, tmp_path):
    db = tmp_path / "matrix.duckdb"
    tests_dir = tmp_path / "generated"
    proc = subprocess.run(
        [sys.executable, "-m", "hwaccel", *matrix_args(
            ray_cluster, db, "--models", "tiny:bert", "--backends", "cpu", "openvino", "cuda",
            "--tests-dir", str(tests_dir), "--json")],
        capture_output=True, text=True, timeout=300, env=driver_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_ray_on_loopback_only()
    found = {r["hardware"]: r for r in rows(db)}
    assert set(found) == {"cpu", "openvino", "cuda"}
    cpu, openvino, cuda = found["cpu"], found["openvino"], found["cuda"]
    for row, node in ((cpu, "cpu-node"), (openvino, "openvino-node")):
        assert row["success"] and row["test_status"] == "passed", row
        assert row["p50_ms"] > 0 and row["memory_usage"] > 0
        assert row["node"] == node
        details = json.loads(row["details"])
        assert details["ray_node_id"] == ray_cluster.node_id(node)
        assert details["ray_attempts"] == 1
    assert openvino["device"] == "CPU"
    # No node offers CUDA: recorded at once, before any cell ran, with each node's reason.
    assert (cuda["success"], cuda["error_category"]) == (False, "no-node")
    assert cuda["error"].startswith("no node offers backend cuda: ")
    assert "cpu-node: " in cuda["error"] and "openvino-node: " in cuda["error"]
    assert "head: no plugin for it loaded there" in cuda["error"]
    assert cuda["id"] < min(cpu["id"], openvino["id"])
    assert cuda["timestamp"] < min(cpu["timestamp"], openvino["timestamp"])
    # The generated test files come back to the driver's --tests-dir.
    assert sorted(p.name for p in tests_dir.iterdir()) == [
        "test_hf_tiny_bert_cpu.py", "test_hf_tiny_bert_openvino_cpu.py"]
    report = json.loads(proc.stdout)
    assert report["executor"] == "ray"
    assert {c["backend"]: c["node"] for c in report["cells"]} == {
        "cpu": "cpu-node", "openvino": "openvino-node", "cuda": cuda["node"]}
    (run,) = rows(db, "SELECT * FROM runs")
    assert run["status"] == "finished" and json.loads(run["settings"])["executor"] == "ray"


def _wait_for(predicate: Any, what: str, timeout: float, proc: subprocess.Popen[str]) -> Any:
    """Poll ``predicate`` until it returns something true; fail if the matrix ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the matrix ended (exit {proc.returncode}) before {what}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
def test_a_node_lost_mid_run_retries_elsewhere_or_records_why(ray_cluster, tmp_path):
    """Node ``doomed`` offers quick, slow and solo; it finishes quick, then is removed while
    it runs slow and solo. Node ``rescue``, added meanwhile, offers slow only."""
    env = pythonpath_env(ray_cluster.plugins)
    ray_cluster.add("doomed", HWACCEL_DISABLE_PLUGINS="cpu,openvino", **env)
    db = tmp_path / "matrix.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwaccel", *matrix_args(
            ray_cluster, db, "--models", "tiny:bert", "--backends", *REMOTE_BACKENDS,
            "--timeout", "300")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=driver_env())
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        marks = ray_cluster.marks

        def doomed_busy() -> list[Path]:
            found = sorted(marks.glob("*-doomed-*"))
            backends = {p.name.split("-")[0] for p in found}
            quick_done = any("on quick @ doomed: ok" in line for line in lines)
            return found if quick_done and {"slow", "solo"} <= backends else []

        started = _wait_for(doomed_busy, "quick to finish and slow and solo to run on node "
                            "doomed", 240, proc)
        jobs = [psutil.Process(int(p.read_text())) for p in started if "quick" not in p.name]
        ray_cluster.add("rescue", HWACCEL_DISABLE_PLUGINS="cpu,openvino,quick,solo", **env)
        assert_ray_on_loopback_only()  # the driver too: it set loopback itself
        ray_cluster.cluster.remove_node(ray_cluster.nodes.pop("doomed"), allow_graceful=False)
        _, alive = psutil.wait_procs(jobs, timeout=30)
        assert not alive, "the lost node's benchmark jobs survived it"
        proc.wait(timeout=240)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(lines)
    assert proc.returncode == 0, err[-3000:]
    found = {r["hardware"]: r for r in rows(db)}
    assert set(found) == set(REMOTE_BACKENDS), found
    quick, slow, solo = (found[b] for b in REMOTE_BACKENDS)
    # Measured on the lost node before it went: kept.
    assert quick["success"] and quick["node"] == "doomed" and quick["test_status"] == "passed"
    # Retried on the node that also offers its backend, and measured there.
    assert slow["success"] and slow["node"] == "rescue", slow
    details = json.loads(slow["details"])
    assert details["role"] == "rescue" and details["ray_attempts"] == 2
    assert details["ray_node_id"] == ray_cluster.node_id("rescue")
    assert len(details["ray_lost"]) == 1
    assert details["ray_lost"][0].startswith("node doomed was lost while running it "
                                             "(NodeDiedError: ")
    # once on doomed (its benchmark job, lost with it), then once on rescue
    assert sorted(p.name.split("-")[1] for p in marks.glob("slow-*")) == ["doomed", "rescue"]
    # No other node offers solo: a failure that says why.
    assert (solo["success"], solo["error_category"], solo["node"]) == (False, "crash",
                                                                        "doomed")
    assert solo["error"].startswith("node doomed was lost while running it")
    assert solo["error"].endswith("; no other alive node offers it (solo)")
    (run,) = rows(db, "SELECT * FROM runs")
    assert run["status"] == "finished" and run["planned"] == 3
    assert "on slow @ rescue: ok" in err and "on solo @ doomed: fail crash" in err
