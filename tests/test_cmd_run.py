"""``hwaccel run SCENARIO``: a bad file is one line and exit 2; a real sweep is measured,
stored with the file's text and shown by ``hwaccel history``; ``kind: matrix`` runs as the
matrix; the benchmark table grows generation columns."""

from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path

import pytest

from conftest import hardware_rows, run_cli
from hwaccel.cli import cmd_matrix, main
from hwaccel.errors import UsageError
from hwaccel.history.store import Store
from hwaccel.types import BenchmarkResult


def test_a_bad_scenario_is_one_line_and_exit_2(tmp_path, tmp_db):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmodels: [tiny:bert]\nbatch_sizes:\n  - 1\n  - many\n")
    for argv in (["run", str(bad)], ["benchmark", "--config", str(bad)]):
        proc = run_cli(*argv, "--db", str(tmp_db))
        assert proc.returncode == 2
        assert proc.stderr == (f"hwaccel: error: {bad}:5: batch_sizes: item 2 must be a whole "
                               "number or auto, not the text 'many'\n")
    proc = run_cli("run", str(tmp_path / "missing.yaml"), "--db", str(tmp_db))
    assert (proc.returncode, proc.stderr) == (
        2, f"hwaccel: error: {tmp_path / 'missing.yaml'}: no such scenario file\n")
    assert not tmp_db.exists()  # nothing ran


def test_a_scenario_without_backends_names_the_missing_key(tmp_path, tmp_db):
    file = tmp_path / "nobackend.yaml"
    file.write_text("models: [tiny:bert]\n")
    proc = run_cli("run", str(file), "--db", str(tmp_db))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"hwaccel: error: {file}:1: backends: no backends: name "
                                  "one with --backend")


SWEEP = """\
name: tiny sweep
description: two sequence lengths of tiny:bert
models: [tiny:bert]
backends: cpu
seq_lens: [8, 16]
warmup: 0
iterations: 2
min_seconds: 0
"""


def test_a_scenario_runs_its_sweep_and_history_shows_it(tmp_path, tmp_db):
    file = tmp_path / "sweep.yaml"
    file.write_text(SWEEP)
    proc = run_cli("run", str(file), "--db", str(tmp_db), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    results = report["results"]
    assert [(r["model"], r["backend"], r["seq_len"], r["success"]) for r in results] == \
        [("tiny:bert", "cpu", 8, True), ("tiny:bert", "cpu", 16, True)]
    assert sorted(row["seq_len"] for row in hardware_rows(tmp_db)) == [8, 16]
    with Store(tmp_db, read_only=True) as store:
        (run,) = store.query("SELECT * FROM runs")
    assert run["run_id"] == report["run_id"] and run["command"] == "benchmark"
    assert (run["scenario"], run["scenario_file"]) == (SWEEP, str(file.resolve()))
    sweep = json.loads(run["settings"])["sweep"]
    assert [p["seq_len"] for p in sweep] == [8, 16] and sweep[0]["iterations"] == 2

    listed = run_cli("history", "--db", str(tmp_db), "--json")
    (entry,) = json.loads(listed.stdout)
    assert (entry["scenario_name"], entry["scenario_file"], entry["scenario"]) == \
        ("tiny sweep", str(file.resolve()), SWEEP)
    table = run_cli("history", "--db", str(tmp_db))
    assert "tiny sweep" in table.stdout and "seq_lens: [8, 16]" not in table.stdout
    one = run_cli("history", "--db", str(tmp_db), "--run", report["run_id"][:8])
    assert f"Scenario of run {report['run_id'][:8]} ({file.resolve()}):\n{SWEEP}" in one.stdout


def test_a_matrix_scenario_runs_as_the_matrix_with_its_defaults(tmp_path, monkeypatch):
    file = tmp_path / "matrix.yaml"
    file.write_text("kind: matrix\nmodels: [tiny:bert]\nworkers: 2\n")
    seen = []
    monkeypatch.setattr(cmd_matrix, "run", lambda args: seen.append(args) or 0)
    assert main(["run", str(file), "--iterations", "4"]) == 0
    (args,) = seen
    assert (args.config, args.iterations, args.default_timeout, args.resume) == \
        (str(file), 4, 300, False)  # matrix's own default timeout and options


def test_a_matrix_scenario_runs_one_matrix_per_combination(tmp_path, tmp_db):
    file = tmp_path / "matrix.yaml"
    file.write_text("name: matrix sweep\nkind: matrix\nmodels: [tiny:bert]\nbackends: cpu\n"
                    "seq_lens: [8, 16]\nwarmup: 0\niterations: 2\nmin_seconds: 0\n")
    proc = run_cli("run", str(file), "--db", str(tmp_db), "--json")
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout)["runs"]
    assert [[(c["seq_len"], c["success"]) for c in run["cells"]] for run in runs] == \
        [[(8, True)], [(16, True)]]
    with Store(tmp_db, read_only=True) as store:
        stored = store.query("SELECT run_id, command, scenario_file FROM runs ORDER BY started")
    assert [(r["run_id"], r["command"], r["scenario_file"]) for r in stored] == \
        [(run["run_id"], "matrix", str(file.resolve())) for run in runs]


def test_auto_batch_is_refused_for_a_matrix_scenario(tmp_path, capsys):
    file = tmp_path / "matrix.yaml"
    file.write_text("kind: matrix\nmodels: [tiny:bert]\n")
    assert main(["run", str(file), "--batch-size", "auto"]) == 2
    assert capsys.readouterr().err == ("hwaccel: error: --batch-size auto is for a scenario "
                                       "of kind benchmark, not matrix\n")


def test_generation_rows_add_their_columns_to_the_table(capsys, monkeypatch):
    from rich.console import Console

    from hwaccel.cli import output
    from hwaccel.cli.cmd_benchmark import print_table
    from hwaccel.running.benchmark import Job
    from hwaccel.types import BenchmarkRequest, BenchmarkSettings, Classification, HardwareInfo

    request = BenchmarkRequest(
        model="tiny:gpt2", hardware=HardwareInfo(backend="cpu", device="cpu", name="cpu",
                                                   available=True),
        classification=Classification(model="tiny:gpt2", family="text-generation"),
        settings=BenchmarkSettings(new_tokens=8))
    forward = BenchmarkResult(model="tiny:gpt2", backend="cpu", device="cpu", success=True,
                              p50_ms=3.0, iterations=5)
    generation = BenchmarkResult(model="tiny:gpt2", backend="cpu", device="cpu", success=True,
                                 p50_ms=40.0, iterations=5, new_tokens=8, ttft_ms=7.25,
                                 tpot_p50_ms=4.5, tpot_p90_ms=5.5, tokens_per_s=210.0,
                                 token_match=0.875, kv_cache="dynamic")
    monkeypatch.setattr(output, "_console", lambda stderr: Console(width=400))  # no wrapping
    plain = dataclasses.replace(request, settings=BenchmarkSettings())
    print_table("t", [Job(plain), Job(request)], [forward, generation], ["new_tokens"])
    out = capsys.readouterr().out
    for header in ("new tokens", "TTFT ms", "tok p50 ms", "tok p90 ms", "tok/s", "match",
                   "kv cache"):
        assert header in out
    gen_line = next(line for line in out.splitlines() if "40.00" in line)
    for cell in ("7.25", "4.50", "5.50", "210.0", "88%", "dynamic"):
        assert cell in gen_line
    assert "items/s" in out and "max diff" in out  # a forward row is there
    print_table("t", [Job(request)], [generation], [])
    out = capsys.readouterr().out
    assert "TTFT ms" in out and "items/s" not in out and "max diff" not in out
    print_table("t", [Job(plain)], [forward], [])
    out = capsys.readouterr().out
    assert "TTFT" not in out and "items/s" in out



class _Estimator:
    """Stands in for the resources estimator: records what it was asked, answers a max batch
    (``None``: it cannot tell)."""

    max_batch: int | None = 9

    def __init__(self, plugins, report, **options):
        self.report = report
        _Estimator.seen = self

    def estimate(self, model, hardware, *, batch_size, seq_len, precision):
        self.asked = (model, batch_size, seq_len, precision)
        return types.SimpleNamespace(
            max_batch_size=self.max_batch, reason="needs 300 MiB, 500 MiB free",
            activations_mb=0.5, kv_cache_mb=0.25, state_mb=0.0, source="estimate")


def test_auto_batch_takes_the_estimate_within_the_memory_limit(monkeypatch, capsys, plugins):
    from hwaccel.cli.cmd_benchmark import auto_batched
    from hwaccel.estimates import resources
    from hwaccel.hardware.detection import DetectionReport
    from hwaccel.running.benchmark import Job
    from hwaccel.types import BenchmarkRequest, BenchmarkSettings, Classification, HardwareInfo

    monkeypatch.setattr(resources, "Estimator", _Estimator)
    cpu = HardwareInfo(backend="cpu", device="cpu", name="cpu", available=True,
                       compute_resource="host-cpu", memory_available_bytes=8 * 2**30)
    report = DetectionReport(hardware=[cpu])
    request = BenchmarkRequest(model="tiny:gpt2", hardware=cpu,
                               classification=Classification(model="tiny:gpt2",
                                                             family="text-generation"),
                               settings=BenchmarkSettings(seq_len=16, new_tokens=4))
    skipped = Job(request, skip=BenchmarkResult(model="tiny:gpt2", backend="cpu",
                                                device="cpu", success=False))
    jobs, chosen = auto_batched([Job(request), skipped, Job(request)], [True, True, False],
                                plugins, report, Path("unused.duckdb"), 500.0, quiet=False)
    assert [j.request.settings.batch_size for j in jobs] == [9, 1, 1]
    assert jobs[1] is skipped and jobs[2].request is request
    assert jobs[0].shrink_on_oom and jobs[0].details["batch_size_auto"]["estimated"] == 9
    assert _Estimator.seen.asked == ("tiny:gpt2", 1, 20, "fp32")  # prompt + new tokens
    (capped,) = _Estimator.seen.report.hardware
    assert capped.memory_available_bytes == 500 * 2**20  # the job's limit, below 8 GiB
    line = ("batch size auto: 9 for tiny:gpt2 on cpu (estimate: at batch 1 it needs 300 MiB, "
            "500 MiB free (the job's memory limit); 0.75 MiB more per sample (estimate))")
    assert capsys.readouterr().err.replace("\n", "") == line
    assert chosen == [{"model": "tiny:gpt2", "device": "cpu", "batch_size": 9,
                       "estimate": line.split("(estimate: ", 1)[1][:-1]}]
    monkeypatch.setattr(_Estimator, "max_batch", None)
    with pytest.raises(UsageError, match="cannot tell the largest batch"):
        auto_batched([Job(request)], [True], plugins, report, Path("unused.duckdb"), 500.0,
                     quiet=True)


def test_an_automatic_batch_killed_for_memory_is_tried_smaller_and_every_try_kept(
        monkeypatch, tmp_db):
    """The run confirms the estimate's batch: an oom is recorded, then the batch shrinks by
    SHRINK until a run fits; a batch asked for by hand is never changed."""
    from hwaccel.kit.failures import failure
    from hwaccel.running import benchmark
    from hwaccel.types import BenchmarkRequest, BenchmarkSettings, Classification, HardwareInfo

    def fake_job(request, timeout_s, pool):
        if request.settings.batch_size > 3:
            return failure(request, "oom", "killed above the memory limit")
        return BenchmarkResult(model=request.model, backend="cpu", device="cpu", success=True,
                               batch_size=request.settings.batch_size, p50_ms=1.0)

    monkeypatch.setattr(benchmark, "run_job", fake_job)
    cpu = HardwareInfo(backend="cpu", device="cpu", name="cpu", available=True)
    request = BenchmarkRequest(model="tiny:bert", hardware=cpu,
                               classification=Classification(model="tiny:bert", family="encoder"),
                               settings=BenchmarkSettings(batch_size=8))
    auto = benchmark.Job(request, details={"batch_size_auto": {"estimated": 8}},
                         shrink_on_oom=True)
    (final, by_hand) = benchmark.run([auto, benchmark.Job(request)], tmp_db, "r1", 60.0)
    assert final.success and final.batch_size == 3  # 8 -> 6 -> 4 -> 3
    assert final.details["oom_at_batch_sizes"] == [8, 6, 4]
    assert final.details["batch_size_auto"] == {"estimated": 8}
    assert not by_hand.success and by_hand.error_category == "oom"
    rows = hardware_rows(tmp_db)
    assert [(r["batch_size"], r["success"]) for r in rows] == [
        (8, False), (6, False), (4, False), (3, True), (8, False)]
