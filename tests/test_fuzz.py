"""A seeded fuzz of the commands a user points at their own model: classify, resources,
generate and benchmark, fed hostile references, mutated ``config.json`` files and option
values.

Every input must end as a result or as hwaccel's own one-line error: no internal error
(exit 70), no traceback, no hang, no file written anywhere under the test's folder except
``--out``, and a generated file that is AST-identical when generated again. The inputs are
drawn from a fixed seed, so a failure names an input that reproduces.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SEED = 16
HANG_S = 60.0
# A benchmark of a reference that resolves (minilm) runs two real jobs, each bounded by this.
JOB_TIMEOUT_S = "30"
# The model types whose default configs are mutated: each pipeline's plainest examples.
BASE_TYPES = ("bert", "gpt2", "t5", "vit", "whisper", "llama", "clip")
HOSTILE_VALUES: tuple[str, ...] = (
    '"x"', "2.5", "NaN", "Infinity", "-Infinity", "-1", "0", "1" + "0" * 400, "1000000000",
    "1000000", "true", "null", "[]", "{}", '"12"', "1e308", "-0.0", "12.0",
)
SEPARATORS = ("\u2028", "\u2029", "\u0085", "\x1c", "\x0b", "\x0c", "\r")


@dataclass(frozen=True)
class Case:
    """One fuzzed command line, and how it was drawn (named when it fails)."""

    kind: str
    argv: tuple[str, ...]
    note: str


def _base_config(model_type: str) -> dict:
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type).to_dict()


def _int_paths(config: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of the integer fields of a config, into its sub-configs."""
    paths: list[tuple[str, ...]] = []
    for key, value in config.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            paths.append((*prefix, key))
        elif isinstance(value, dict) and len(prefix) < 2:
            paths.extend(_int_paths(value, (*prefix, key)))
    return paths


def _config_text(rng: random.Random, base: dict) -> tuple[str, str]:
    """A config.json text made hostile in one of several ways, and what was done."""
    style = rng.choice(("values", "values", "values", "nesting", "truncated", "top-level",
                        "model-type", "huge-list"))
    if style == "nesting":
        depth = rng.choice((70, 500, 2_000, 20_000))
        return '{"model_type": "bert", "x": ' + "[" * depth + "]" * depth + "}", \
            f"nesting {depth}"
    if style == "truncated":
        text = json.dumps(base)
        cut = rng.randrange(1, len(text))
        return text[:cut], f"truncated at {cut}"
    if style == "top-level":
        return rng.choice(("[]", "1", '"bert"', "null", "")), "not an object"
    if style == "model-type":
        value = rng.choice(('"' + "b" * 5_000 + '"', "12", "null", '"../../etc"', '"bert\\u2028"'))
        return json.dumps({**base, "model_type": "__MT__"}).replace('"__MT__"', value), \
            f"model_type {value[:20]}"
    if style == "huge-list":
        return json.dumps({**base, "id2label": {str(i): "x" for i in range(200_000)}}), \
            "200k labels"
    marker_text = json.dumps(base)
    fields = _int_paths(base)
    notes = []
    data = json.loads(marker_text)
    replacements = {}
    for n in range(rng.randint(1, 3)):
        path = rng.choice(fields)
        marker = f"__HOSTILE_{n}__"
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = marker
        replacements[f'"{marker}"'] = rng.choice(HOSTILE_VALUES)
        notes.append(f"{'.'.join(path)}={replacements[f'{chr(34)}{marker}{chr(34)}'][:12]}")
    text = json.dumps(data)
    for marker, value in replacements.items():
        text = text.replace(marker, value)
    return text, ", ".join(notes)


def _reference(rng: random.Random, sentinel: Path) -> str:
    """A model reference a careless or hostile user might type."""
    style = rng.choice(("long", "separator", "path", "hub", "tiny", "control", "plain"))
    if style == "long":
        return rng.choice(("a", "tiny:", "org/", "./")) + "x" * rng.choice((300, 5_000, 100_000))
    if style == "separator":
        return "tiny:bert" + rng.choice(SEPARATORS) + "gpt2"
    if style == "path":
        return rng.choice((str(sentinel), str(sentinel / "x" / ".." / ".."), "../" * 40 + "etc",
                           "/proc/self/environ", "/dev/zero", "~", str(sentinel) + "/\x00x"))
    if style == "hub":
        return rng.choice(("org/" + "n" * 96, "a/b/c", "org/../name", "-org/name", "org/name--x"))
    if style == "tiny":
        return "tiny:" + rng.choice(("", "nope", "bert/../gpt2", "BERT", "bert " * 3, "😀"))
    if style == "control":
        return rng.choice(("\t", " ", "\x1b[31mred", "-", "--", "-h x"))
    return rng.choice(("bert-base-uncased", "minilm", "gpt2", "x" * 255, ".", ".."))


def _cases(root: Path, out: Path, sentinel: Path) -> Iterator[Case]:
    """Draw the fuzzed command lines from the fixed seed."""
    rng = random.Random(SEED)
    bases = {t: _base_config(t) for t in BASE_TYPES}
    db = str(out / "fuzz.duckdb")
    for n in range(120):
        model_type = rng.choice(BASE_TYPES)
        text, note = _config_text(rng, bases[model_type])
        folder = root / "models" / f"m{n}"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(text, encoding="utf-8")
        command = rng.choice(("classify", "resources", "generate"))
        argv: tuple[str, ...] = (command, str(folder))
        if command == "resources":
            argv += ("--no-measure", "--backend", "cpu", "--db", db)
        elif command == "generate":
            argv += ("--backend", "cpu", "--out", str(out / f"gen{n}"))
        yield Case("config", argv, f"{model_type}: {note}")
    for n in range(100):
        ref = _reference(rng, sentinel)
        command = rng.choice(("classify", "resources", "generate", "benchmark"))
        argv = (command, ref)
        if command == "resources":
            argv += ("--no-measure", "--backend", "cpu", "--db", db)
        elif command == "generate":
            argv += ("--backend", "cpu", "--out", str(out / f"ref{n}"))
        elif command == "benchmark":
            argv += ("--backend", "cpu", "--db", db, "--iterations", "1", "--warmup", "0",
                     "--min-seconds", "0", "--timeout", JOB_TIMEOUT_S)
        yield Case("reference", argv, repr(ref[:40]))
    options = ("--batch-size", "--seq-len", "--timeout", "--memory-limit", "--iterations",
               "--warmup", "--min-seconds", "--max-seconds", "--threads")
    values = ("nan", "inf", "-inf", "-1", "0", "1e400", "abc", "9" * 40, "", "1_0", "0x10",
              "२", "1e-320")
    for _ in range(80):
        option, value = rng.choice(options), rng.choice(values)
        ref = rng.choice(("org/not-cached", "tiny:nope", str(sentinel)))
        if rng.random() < 0.5:
            argv = ("benchmark", ref, "--backend", "cpu", "--db", db, option, value)
        else:
            argv = ("resources", ref, "--no-measure", "--db", db,
                    option if option in ("--batch-size", "--seq-len") else "--seq-len", value)
        yield Case("option", argv, f"{option} {value!r}")


def _tree(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every file under root (outside skip) with its size and modification time."""
    state = {}
    for path in root.rglob("*"):
        if path == skip or skip in path.parents:
            continue
        with contextlib.suppress(OSError):
            stat = path.lstat()
            state[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return state


def _run(argv: tuple[str, ...]) -> tuple[int | None, str]:
    """Run the CLI in this process with a watchdog; (None, '') when it hangs (a benchmark
    gets its two jobs' time limits on top)."""
    from hwaccel.cli import main

    result: dict[str, object] = {}
    err = io.StringIO()

    def target() -> None:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                result["rc"] = main(list(argv))
            except SystemExit as exc:
                result["rc"] = exc.code if isinstance(exc.code, int) else 1
            except BaseException as exc:  # noqa: BLE001 - recorded as the failure it is
                result["rc"] = 70
                err.write(f"Traceback (escaped main): {type(exc).__name__}: {exc}\n")

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_S + (2 * float(JOB_TIMEOUT_S) if argv[0] == "benchmark" else 0))
    if thread.is_alive():
        return None, ""
    return int(result["rc"]), err.getvalue()


def _asts(folder: Path) -> dict[str, str]:
    return {p.name: ast.dump(ast.parse(p.read_text(encoding="utf-8")))
            for p in sorted(folder.glob("*.py"))}


@pytest.fixture()
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable]:
    """A folder tree to watch, the working directory inside it, backends held to the CPU."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HWACCEL_DISABLE_PLUGINS", "cuda,mps,openvino,qnn,rocm,web")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    yield tmp_path


def test_fuzzed_inputs_end_as_results_or_one_line_errors(sandbox: Path) -> None:
    out = sandbox / "out"
    sentinel = sandbox / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("untouched")
    cases = list(_cases(sandbox, out, sentinel))
    out.mkdir()
    before = _tree(sandbox, out)
    failures = []
    for case in cases:
        rc, stderr = _run(case.argv)
        problem = None
        if rc is None:
            problem = "no answer: it hangs"
        elif rc == 70 or "internal error" in stderr or "Traceback" in stderr:
            problem = f"internal error: {stderr.strip()[-300:]}"
        elif rc == 2 and not stderr.strip().rpartition("\n")[2].startswith("hwaccel: error: "):
            problem = f"usage error without hwaccel's error line: {stderr.strip()[-300:]!r}"
        if problem:
            failures.append(f"{case.kind} {case.note} {case.argv[:2]!r}: {problem}")
        after = _tree(sandbox, out)
        if after != before:
            changed = sorted(set(after.items()) ^ set(before.items()))[:5]
            failures.append(f"{case.kind} {case.note}: wrote outside --out: {changed}")
            before = after
    assert not failures, f"{len(failures)} of {len(cases)} inputs failed:\n" + "\n".join(
        failures[:40])


def test_generated_files_are_ast_identical_when_generated_again(sandbox: Path) -> None:
    rng = random.Random(SEED)
    produced = 0
    for n, model_type in enumerate(rng.sample(BASE_TYPES, 4)):
        folder = sandbox / f"model{n}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(_base_config(model_type)))
        first, second = sandbox / f"a{n}", sandbox / f"b{n}"
        for out in (first, second):
            rc, stderr = _run(("generate", str(folder), "--backend", "cpu", "--out", str(out)))
            assert rc == 0, stderr
        assert _asts(first), f"{model_type}: nothing generated"
        assert _asts(first) == _asts(second), model_type
        produced += len(_asts(first))
    assert produced >= 4

