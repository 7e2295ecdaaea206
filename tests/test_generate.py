"""Generated test files: composition, safety of names, and that they really run."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import generate_and_run, make_plugin_dist, pythonpath_env, run_cli
from hwaccel.errors import UsageError
from hwaccel.generating.generate import file_name, render, write_test
from hwaccel.models.classify import classify

# Quotes, a backslash and code: everything printable a folder name may hold (a line break or
# another non-printable character is refused as a reference before anything is rendered).
EVIL = "evil'\"\"\" name); import os; os.system('echo pwned') # \\ end"
ABSENT_BACKEND = '''
    from hwaccel import HardwareInfo, TemplatePart, hookimpl

    SNIPPETS = {
        "imports": "import torch",
        "availability": 'def unavailable_reason():\\n    return "no Acme NPU in this machine"',
        "placement": ("def place_model(m):\\n    return m\\n\\n\\n"
                      "def place_inputs(i):\\n    return i"),
        "synchronize": "def synchronize():\\n    pass",
        "cleanup": "def release(m):\\n    pass",
        "tolerance": "ATOL = 1e-3\\nRTOL = 1e-3",
    }

    @hookimpl
    def hwaccel_detect():
        return [HardwareInfo(backend="acme", device="acme:0", name="Acme NPU",
                             available=False, reason="no Acme NPU in this machine")]

    @hookimpl
    def hwaccel_template(backend):
        if backend != "acme":
            return None
        snippets = dict(SNIPPETS)
        if "LAZY" in globals():
            del snippets["synchronize"]
        return TemplatePart(owner="backend", name="acme", snippets=snippets)
'''


def _top_level_shape(source: str) -> list[str]:
    """Top-level statements by kind and target name, ignoring the values."""
    shape = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            shape.append("assign:" + ",".join(ast.unparse(t) for t in node.targets))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            shape.append(f"def:{node.name}")
        else:
            shape.append(type(node).__name__ + ":" + ast.unparse(node)[:40])
    return shape


def _model_folder(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert",
                                                    "architectures": ["BertModel"]}))
    return folder


def test_a_model_name_cannot_inject_code(plugins, tmp_path):
    benign = _model_folder(tmp_path, "benign")
    evil = _model_folder(tmp_path, EVIL)
    sources = {}
    for folder in (benign, evil):
        classification = classify(str(folder), plugins).classification
        sources[folder] = render(str(folder), classification, "cpu", plugins)
    assert _top_level_shape(sources[evil]) == _top_level_shape(sources[benign])
    module = ast.parse(sources[evil])
    model_value = next(ast.literal_eval(n.value) for n in module.body
                       if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "MODEL")
    assert model_value == str(evil)
    name = file_name(str(evil), "cpu", set())
    assert name.startswith("test_hf_") and name.endswith("_cpu.py")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789_.")


@pytest.mark.parametrize("separator", ["\n", "\u2028", "\r"])
def test_a_model_name_with_a_line_break_is_refused_before_rendering(plugins, tmp_path, separator):
    folder = tmp_path / f"evil{separator}import os"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    proc = run_cli("generate", str(folder), "--backend", "cpu", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "non-printable character" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["../escape.py", "/tmp/abs.py", "sub/dir.py", "test_x.sh"])
def test_write_test_refuses_names_outside_the_folder(tmp_path, name):
    with pytest.raises(UsageError):
        write_test("x = 1\n", tmp_path / "out", name)
    assert not (tmp_path / "escape.py").exists()


def test_colliding_names_get_distinct_files():
    taken = {file_name("tiny:bert", "cpu", set())}
    assert file_name("tiny/bert", "cpu", taken) not in taken


def test_backend_missing_a_required_slot_is_a_clear_error(tmp_path):
    root = make_plugin_dist(tmp_path, "hwaccel-test-acme", {"acme": "hwaccel_test_acme"},
                            {"hwaccel_test_acme.py": ABSENT_BACKEND + "\n    LAZY = True\n"})
    proc = run_cli("generate", "tiny:bert", "--backend", "acme", "--out", str(tmp_path / "o"),
                   env=pythonpath_env(root))
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("hwaccel: error: backend 'acme' lacks 'synchronize' "
                                   "required by pipeline 'text'")


def test_unknown_backend_and_unsupported_model_fail_with_one_line(tmp_path):
    proc = run_cli("generate", "tiny:bert", "--backend", "nope", "--out", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "hwaccel: error: no loaded plugin provides template snippets for backend 'nope'"]
    proc = run_cli("generate", "tiny:vit", "--backend", "cpu", "--out", str(tmp_path),
                   env={"HWACCEL_DISABLE_PLUGINS": "vision"})
    assert proc.returncode == 2 and "no installed plugin claims pipeline 'vision'" in proc.stderr


@pytest.mark.slow
def test_generated_files_pass_ruff_and_pytest(tmp_path):
    models = ["tiny:bert", "tiny:gpt2", "tiny:t5", "minilm"]
    # 3 checks per model, plus generate for the two generative ones
    generate_and_run(models, tmp_path / "generated", expect_passed=14)


@pytest.mark.slow
def test_generated_file_runs_as_a_script_with_a_batch_size(tmp_path):
    run_cli("generate", "tiny:gpt2", "--backend", "cpu", "--out", str(tmp_path))
    (path,) = tmp_path.glob("test_*.py")
    proc = subprocess.run([sys.executable, str(path), "--batch-size", "3", "--seq-len", "8"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "4 passed" in proc.stdout


def test_generated_file_skips_with_the_reason_when_hardware_is_absent(tmp_path):
    root = make_plugin_dist(tmp_path / "plugin", "hwaccel-test-acme",
                            {"acme": "hwaccel_test_acme"},
                            {"hwaccel_test_acme.py": ABSENT_BACKEND})
    run = generate_and_run(["tiny:bert"], tmp_path / "o", backend="acme",
                           env=pythonpath_env(root))
    assert "3 skipped" in run.stdout
    assert "acme unavailable: no Acme NPU in this machine" in run.stdout


def test_an_unwritable_output_folder_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_cli("generate", "tiny:bert", "--backend", "cpu", "--out", str(blocker / "sub"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("hwaccel: error: cannot write ")
    assert len(proc.stderr.strip().splitlines()) == 1
