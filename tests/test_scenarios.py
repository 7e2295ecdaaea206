"""Scenario files: reading, checking (FILE:LINE: KEY: errors), the sweep, and the precedence
of the command line over the file (``--config``)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from hwaccel.cli import build_parser
from hwaccel.cli.measure_options import scenario_from, settings_of, sweep_from
from hwaccel.errors import UsageError
from hwaccel.scenarios.expand import axes, sweep, varied
from hwaccel.scenarios.load import MAX_BYTES, load, parse

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_a_scenario_reads_its_keys_and_sweeps_the_product_of_its_lists():
    scenario = parse("name: s\nmodels: tiny:bert\nbackends: [cpu, openvino]\n"
                     "batch_sizes: [1, 2]\nprompt_lens: [8, 16, 32]\n"
                     "precision: [fp32, native]\nnew_tokens: 4\nmin_seconds: 0\n", "s.yaml")
    assert scenario.name == "s" and scenario.kind == "benchmark"
    assert scenario.values["models"] == ("tiny:bert",)
    assert scenario.values["backends"] == ("cpu", "openvino")
    assert scenario.values["seq_len"] == (8, 16, 32)  # prompt_lens sets seq_len
    points = sweep(axes(scenario, {}))
    assert len(points) == 12
    assert {(p["batch_size"], p["seq_len"], p["precision"]) for p in points} == \
        set(itertools.product((1, 2), (8, 16, 32), ("fp32", "native")))
    assert all(p["new_tokens"] == 4 and p["min_seconds"] == 0 for p in points)
    assert all((p["warmup"], p["iterations"], p["threads"]) == (3, 20, None) for p in points)
    assert varied(points) == ["batch_size", "seq_len", "precision"]
    settings = settings_of(points[-1])
    assert (settings.batch_size, settings.seq_len, settings.precision, settings.new_tokens,
            settings.min_iterations) == (2, 32, "native", 4, 20)


F = "bad.yaml"


@pytest.mark.parametrize("text, message", [
    ("models: [tiny:bert]\nbatch_sise: 2\n",
     f"{F}:2: batch_sise: unknown key (did you mean batch_size?)"),
    ("models: [tiny:bert]\nbatch_sizes:\n  - 1\n  - x\n",
     f"{F}:4: batch_sizes: item 2 must be a whole number or auto, not the text 'x'"),
    ('batch_sizes: [1, "x"]\n',
     f"{F}:1: batch_sizes: item 2 must be a whole number or auto, not the text 'x'"),
    ("warmup: 1\niterations: 0\n", f"{F}:2: iterations: must be at least 1, not 0"),
    ("\n\nseq_lens: []\n", f"{F}:3: seq_lens: an empty list sweeps nothing; give at least "
                           "one value"),
    ("threads: true\n", f"{F}:1: threads: must be a whole number, not the boolean true"),
    ("timeout: [1, 2]\n", f"{F}:1: timeout: takes one value, not a list"),
    ("memory_limit: -5\n", f"{F}:1: memory_limit: must be a positive number of MiB, not -5"),
    ("min_seconds: .inf\n", f"{F}:1: min_seconds: must be a finite number of seconds, not inf"),
    ("precision: [fp32,\n  fp8]\n", f"{F}:2: precision: item 2 must be one of fp32, fp16, "
                                    "bf16, native, int8, int4, not the text 'fp8'"),
    ("models:\n  - tiny:bert\n  - 7\n", f"{F}:3: models: item 2 must be a name, not 7"),
    ("kind: sweep\n", f"{F}:1: kind: must be one of benchmark, matrix, not the text 'sweep'"),
    ("seq_len: 8\nprompt_len: 8\n",
     f"{F}:2: prompt_len: sets the same setting as seq_len (line 1); give one"),
    ("warmup: 1\nwarmup: 2\n", f"{F}:2: warmup: given twice (line 1); give one"),
    ("batch_size: {a: 1}\n", f"{F}:1: batch_size: takes one value or a list, not a mapping"),
    ("- tiny:bert\n", f"{F}:1: a scenario is a mapping of keys (models, backends, "
                      "batch_sizes, ...), not a list"),
    ("", f"{F}:1: the file is empty; a scenario is a mapping of keys (models, backends, "
         "batch_sizes, ...)"),
    ("seq_len: 8\nbatch_size: !!int 2\n",
     f"{F}:2: YAML tags (tag:yaml.org,2002:int) are not allowed in a scenario"),
    ("warmup: 1\nseq_len: &n 8\nbatch_size: *n\n",
     f"{F}:2: YAML anchors and aliases are not allowed in a scenario"),
    ("models: [tiny:bert\nbackends: cpu\n", f"{F}:2: not valid YAML: "),
    ("warmup: 1\n---\nwarmup: 2\n", f"{F}:2: not valid YAML: "),
])
def test_each_error_names_the_file_the_line_and_the_key(text, message):
    with pytest.raises(UsageError) as error:
        parse(text, F)
    assert str(error.value).startswith(message) if message.endswith(": ") \
        else str(error.value) == message


def test_a_key_is_refused_by_the_command_that_does_not_take_it():
    workers = parse("models: [tiny:bert]\nworkers: 2\n", F)
    workers.check_for("matrix")
    with pytest.raises(UsageError, match=rf"^{F}:2: workers: is for hwaccel matrix, not "
                                         "hwaccel benchmark$"):
        workers.check_for("benchmark")
    auto = parse("kind: matrix\nbatch_sizes: [1, auto]\n", F)
    auto.check_for("benchmark")
    with pytest.raises(UsageError, match=rf"^{F}:2: batch_sizes: auto is for hwaccel "
                                         "benchmark, not hwaccel matrix$"):
        auto.check_for("matrix")


def test_missing_large_and_binary_files_are_one_line_errors(tmp_path):
    with pytest.raises(UsageError, match="nope.yaml: no such scenario file$"):
        load(tmp_path / "nope.yaml")
    with pytest.raises(UsageError, match="is a folder, not a scenario file$"):
        load(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_BYTES + "\n")
    with pytest.raises(UsageError, match=r"big.yaml: 1,048,579 bytes; a scenario file is at "
                                         r"most 1,048,576 bytes$"):
        load(big)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00models")
    with pytest.raises(UsageError, match="not UTF-8 text"):
        load(binary)


@pytest.mark.parametrize("name, models, points", [
    ("latency-sweep.yaml", ("minilm", "tiny:bert"), 3),
    ("llm-generation.yaml", ("tiny:gpt2", "tiny:llama"), 1),
    ("batch-throughput.yaml", ("minilm",), 4),
])
def test_the_examples_read_and_expand(name, models, points):
    scenario = load(EXAMPLES / name)
    scenario.check_for(scenario.kind)
    assert scenario.values["models"] == models
    assert scenario.values["backends"] == ("cpu", "openvino")
    assert len(sweep(axes(scenario, {}))) == points


def parsed(*argv: str):
    """The namespace ``hwaccel ARGV`` parses to."""
    return build_parser().parse_args(list(argv))


def test_the_command_line_wins_over_the_file_which_wins_over_the_default(tmp_path):
    file = tmp_path / "s.yaml"
    file.write_text("models: [tiny:bert]\nbackends: cpu\nseq_lens: [16, 32]\n"
                    "batch_sizes: [1, 2]\niterations: 3\ntimeout: 5\n")
    args = parsed("benchmark", "--config", str(file), "--seq-len", "8", "--timeout", "7")
    points = sweep_from(args, scenario_from(args, "benchmark"))
    assert [(p["batch_size"], p["seq_len"]) for p in points] == [(1, 8), (2, 8)]
    assert {(p["iterations"], p["warmup"]) for p in points} == {(3, 3)}  # file, default
    assert args.timeout == 7
    args = parsed("benchmark", "--config", str(file), "--prompt-len", "12")
    points = sweep_from(args, scenario_from(args, "benchmark"))
    assert {p["seq_len"] for p in points} == {12} and args.timeout == 5
    args = parsed("benchmark", "tiny:bert", "--backend", "cpu")
    points = sweep_from(args, scenario_from(args, "benchmark"))
    assert points == [{"batch_size": 1, "seq_len": 32, "new_tokens": 0, "kv_cache": "dynamic",
                       "precision": "fp32",
                       "warmup": 3, "iterations": 20, "min_seconds": 1.0,
                       "max_seconds": 60.0, "threads": None}]
    assert args.timeout == 600


def test_the_matrix_takes_workers_from_the_file_unless_given(tmp_path):
    file = tmp_path / "m.yaml"
    file.write_text("kind: matrix\nworkers: 2\nexecutor: local\nmemory_limit: 900\n")
    args = parsed("matrix", "--config", str(file))
    scenario_from(args, "matrix")
    assert (args.workers, args.executor, args.memory_limit, args.timeout) == \
        (2, "local", 900, 300)
    args = parsed("matrix", "--config", str(file), "--workers", "1")
    scenario_from(args, "matrix")
    assert args.workers == 1


def test_seq_len_and_a_different_prompt_len_are_refused():
    args = parsed("benchmark", "tiny:bert", "--backend", "cpu", "--seq-len", "8",
                  "--prompt-len", "16")
    with pytest.raises(UsageError, match="--seq-len 8 and --prompt-len 16 set the same"):
        sweep_from(args, None)
    args = parsed("benchmark", "--seq-len", "8", "--prompt-len", "8")
    assert sweep_from(args, None)[0]["seq_len"] == 8


def test_models_and_backends_named_on_the_command_line_replace_the_files():
    from hwaccel.cli.cmd_benchmark import names

    scenario = parse("models: [minilm, tiny:bert]\nbackends: cpu\n", F)
    assert names(["tiny:gpt2"], scenario, "models", "name a MODEL") == ["tiny:gpt2"]
    assert names([], scenario, "models", "name a MODEL") == ["minilm", "tiny:bert"]
    assert names(None, scenario, "backends", "name one") == ["cpu"]
    with pytest.raises(UsageError, match=rf"^{F}:1: backends: no backends: name one with "
                                         "--backend on the command line or list backends in "
                                         "the scenario$"):
        names(None, parse("models: [minilm]\n", F), "backends", "name one with --backend")
    with pytest.raises(UsageError, match="^no models: name a MODEL$"):
        names([], None, "models", "name a MODEL")
