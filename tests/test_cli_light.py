"""`hwaccel --help` and `hwaccel list-plugins` stay light: no heavy library is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "openvino", "onnxruntime", "diffusers", "PIL", "numpy",
         "playwright")
PROBE = """
import runpy, sys
sys.argv = ["hwaccel", *{args!r}]
try:
    runpy.run_module("hwaccel", run_name="__main__")
except SystemExit:
    pass
print("HEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("args", [["--help"], ["list-plugins"], ["list-plugins", "--json"],
                                  ["classify", "--help"], ["benchmark", "--help"],
                                  ["run", "--help"],
                                  ["recommend", "--help"], ["resources", "--help"]])
def test_light_commands_import_no_heavy_module(args):
    proc = subprocess.run([sys.executable, "-c", PROBE.format(args=args, heavy=HEAVY)],
                          capture_output=True, text=True, timeout=60)
    heavy_line = [line for line in proc.stdout.splitlines() if line.startswith("HEAVY=")]
    assert heavy_line == ["HEAVY="], proc.stdout + proc.stderr


def test_python_dash_m_and_version():
    proc = subprocess.run([sys.executable, "-m", "hwaccel", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.startswith("hwaccel 0.")


def test_no_command_prints_help_and_exits_2():
    proc = subprocess.run([sys.executable, "-m", "hwaccel"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "list-plugins" in proc.stdout and "benchmark" in proc.stdout
