"""`hwaccel benchmark`: measured rows in DuckDB, failures recorded, bad input refused."""

from __future__ import annotations

import json

import pytest

from conftest import benchmark_one, hardware_rows, run_cli

FAST = ["--iterations", "5", "--min-seconds", "0.05", "--warmup", "1"]


@pytest.mark.slow
def test_benchmark_writes_a_measured_row(tmp_db):
    # benchmark_one also checks the JSON report's p50 against the row's
    row = benchmark_one("tiny:bert", tmp_db, "--batch-size", "2", "--seq-len", "16", *FAST)
    assert row["hardware"] == "cpu"
    assert row["model_id"] == "tiny:bert" and row["model_type"] == "bert"
    assert (row["family"], row["pipeline"]) == ("embedding", "text")
    assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert row["iterations"] >= 5 and row["batch_size"] == 2 and row["seq_len"] == 16
    assert row["inference_time"] == pytest.approx(row["mean_ms"] / 1000)
    assert row["memory_usage"] > row["baseline_rss_mb"] > 0
    assert row["load_time"] > 0 and row["cold_ms"] > 0 and row["threads"] >= 1
    assert json.loads(row["output_shape"]) == {"logits": [2, 16, 1024]}
    assert "torch" in json.loads(row["versions"]) and len(row["hardware_fingerprint"]) == 16


NO_VISION = {"HWACCEL_DISABLE_PLUGINS": "vision"}  # tiny:vit then has no workload


@pytest.mark.slow
def test_unsupported_model_is_a_recorded_failure(tmp_db):
    proc = run_cli("benchmark", "tiny:vit", "--backend", "cpu", "--db", str(tmp_db), *FAST,
                   env=NO_VISION)
    assert proc.returncode == 1
    (row,) = hardware_rows(tmp_db)
    assert row["success"] is False and row["error_category"] == "unsupported"
    assert "pipeline 'vision'" in row["error"]


@pytest.mark.parametrize("args, message", [
    (["--backend", "warpdrive"], "unknown backend 'warpdrive'"),
    (["--backend", "cpu", "--iterations", "0"], "--iterations must be at least 1"),
    (["--backend", "cpu", "--timeout", "nan"], "--timeout must be a positive number"),
    (["--backend", "cpu", "--min-seconds", "inf"], "--min-seconds must be a finite number"),
    (["--backend", "cpu", "--max-seconds", "-1"], "--max-seconds must be at least 0, not -1"),
    (["--backend", "cpu", "--new-tokens", "-1"], "--new-tokens must be at least 0, not -1"),
    (["--backend", "cpu", "--seq-len", "8", "--prompt-len", "16"],
     "--seq-len 8 and --prompt-len 16 set the same setting"),
    (["--backend", "cpu", "--batch-size", "many"], "argument --batch-size: invalid"),
    ([], "no backends: name one with --backend"),
])
def test_bad_options_fail_before_any_job(tmp_db, args, message):
    proc = run_cli("benchmark", "tiny:bert", "--db", str(tmp_db), *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hwaccel: error: {message}")
    assert "Traceback" not in proc.stderr
    assert not tmp_db.exists() or hardware_rows(tmp_db) == []


def test_a_hub_model_that_is_not_cached_is_recorded_without_running(tmp_db):
    proc = run_cli("benchmark", "gpt2", "--backend", "cpu", "--db", str(tmp_db), *FAST)
    assert proc.returncode == 1
    (row,) = hardware_rows(tmp_db)
    assert (row["success"], row["error_category"]) == (False, "model-unavailable")
    assert "not in the local Hugging Face cache" in row["error"]
    assert row["wall_time_s"] is None  # no job process was started


def test_a_folder_with_a_config_and_no_weights_is_unavailable_not_our_failure(tmp_db,
                                                                             tmp_path):
    folder = tmp_path / "only-config"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 4096,
        "vocab_size": 200000, "n_layer": 1, "n_head": 32}))
    proc = run_cli("benchmark", str(folder), "--backend", "cpu", "--db", str(tmp_db), *FAST)
    assert proc.returncode == 1
    (row,) = hardware_rows(tmp_db)
    assert (row["success"], row["error_category"]) == (False, "model-unavailable")
    assert row["error"].startswith(f"{folder} holds no weight file")
    assert row["wall_time_s"] is None  # decided without building 819 M random parameters


@pytest.mark.slow
def test_a_wide_gpt2_checkpoint_over_the_memory_limit_is_recorded_as_oom(tmp_db, tmp_path):
    """The issue's case: width 4096 and a 200,000-token vocabulary (3.3 GB of fp32
    parameters, those the checkpoint lacks initialised by transformers) under 1,500 MiB."""
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "wide-gpt2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 4096,
        "vocab_size": 200000, "n_layer": 1, "n_head": 32}))
    save_file({"transformer.ln_f.weight": torch.ones(4096),
               "transformer.ln_f.bias": torch.zeros(4096)}, str(folder / "model.safetensors"))
    proc = run_cli("benchmark", str(folder), "--backend", "cpu", "--db", str(tmp_db),
                   "--memory-limit", "1500", *FAST, timeout=180)
    assert proc.returncode == 1, proc.stderr[-2000:]
    (row,) = hardware_rows(tmp_db)
    assert (row["success"], row["error_category"]) == (False, "oom")
    assert "over the memory limit of 1,500 MiB" in row["error"]


def test_rows_decided_without_a_job_still_carry_versions_and_fingerprint(tmp_db):
    run_cli("benchmark", "tiny:vit", "--backend", "cpu", "--db", str(tmp_db), *FAST,
            env=NO_VISION)
    (row,) = hardware_rows(tmp_db)
    assert "python" in json.loads(row["versions"]) and len(row["hardware_fingerprint"]) == 16


@pytest.mark.slow
def test_a_precision_the_backend_cannot_run_is_recorded_as_what_ran(tmp_db):
    """The CPU backend runs fp32 only: asking for fp16 stores fp32, never a false label."""
    row = benchmark_one("tiny:bert", tmp_db, "--precision", "fp16", *FAST)
    assert row["precision"] == "fp32"


def test_unknown_precision_is_a_usage_error(tmp_db):
    proc = run_cli("benchmark", "tiny:bert", "--backend", "cpu", "--db", str(tmp_db),
                   "--precision", "fp8")
    assert proc.returncode == 2 and "invalid choice: 'fp8'" in proc.stderr
    assert not tmp_db.exists()


def _report(*records):
    from hwaccel.hardware.detection import DetectionReport
    from hwaccel.types import HardwareInfo

    return DetectionReport(hardware=[HardwareInfo(**r) for r in records])


SELECTOR_REPORT = (
    {"backend": "cpu", "device": "cpu", "name": "x", "available": True},
    {"backend": "acc", "device": "first", "name": "a", "available": True, "index": 0},
    {"backend": "acc", "device": "second", "name": "b", "available": False, "index": 1,
     "reason": "the second unit says no"},
    {"backend": "acc", "device": "third", "name": "c", "available": True, "index": 2},
)


@pytest.mark.parametrize(("backends", "every", "expected"), [
    (["acc"], False, [("first", None)]),
    (["acc"], True, [("first", None), ("third", None)]),
    (["acc"], "with_absent", [("first", None), ("second", "unavailable"), ("third", None)]),
    (["acc:third"], False, [("third", None)]),
    (["acc:second"], False, [("second", "unavailable")]),
    (["acc:first", "cpu"], False, [("first", None), ("cpu", None)]),
])
def test_backend_device_selector_and_every_device(plugins, backends, every, expected):
    from hwaccel.running.benchmark import plan
    from hwaccel.types import BenchmarkSettings

    jobs, _ = plan(["tiny:bert"], backends, plugins, _report(*SELECTOR_REPORT),
                   BenchmarkSettings(), every_device=bool(every),
                   with_absent=every == "with_absent")
    got = [(j.request.hardware.device, j.skip.error_category if j.skip else None) for j in jobs]
    assert got == expected
    for job in jobs:
        if job.skip is not None:
            assert job.skip.error == "acc:second is absent: the second unit says no"


def test_a_device_selector_naming_no_device_is_a_usage_error(plugins):
    from hwaccel.errors import UsageError
    from hwaccel.running.benchmark import plan
    from hwaccel.types import BenchmarkSettings

    with pytest.raises(UsageError, match=r"backend 'acc' has no device 'fourth' \(its "
                                         r"devices: acc:first, acc:second, acc:third\)"):
        plan(["tiny:bert"], ["acc:fourth"], plugins, _report(*SELECTOR_REPORT),
             BenchmarkSettings())
    with pytest.raises(UsageError, match="unknown backend 'nope:x'"):
        plan(["tiny:bert"], ["nope:x"], plugins, _report(*SELECTOR_REPORT), BenchmarkSettings())
