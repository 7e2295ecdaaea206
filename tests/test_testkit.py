"""hwaccel-testkit's contracts on first-party plugins, and on broken plugins that must fail."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

from conftest import make_plugin_dist, pythonpath_env
from hwaccel_testkit import BackendContract, PipelineContract


class TestCpu(BackendContract):
    plugin = "cpu"
    vendor_modules = ("cpuinfo",)


class TestOpenvino(BackendContract):
    plugin = "openvino"
    vendor_modules = ("openvino",)


class TestText(PipelineContract):
    plugin = "text"


class TestVision(PipelineContract):
    plugin = "vision"


BROKEN_BACKEND = '''\
    """A backend that breaks the contract: it imports its SDK at import time, reports an
    absent device without a reason, answers every backend's benchmark and template."""
    import fakesdk  # noqa: F401 - the vendor SDK at import time

    from hwaccel import BackendInfo, BenchmarkResult, HardwareInfo, TemplatePart, hookimpl


    @hookimpl
    def hwaccel_backend_info():
        return BackendInfo(name="brokenbackend", description="broken on purpose")


    @hookimpl
    def hwaccel_detect():
        return [HardwareInfo(backend="brokenbackend", device="x", name="x", available=False)]


    @hookimpl
    def hwaccel_benchmark(request):
        return BenchmarkResult(model=request.model, backend="brokenbackend", device="x",
                               success=False, error="always answers")


    @hookimpl
    def hwaccel_template(backend):
        return TemplatePart(owner="backend", name="brokenbackend", snippets={"imports": ""})
'''

CONTRACT_RUN = '''\
    from hwaccel_testkit import BackendContract


    class TestBroken(BackendContract):
        plugin = "brokenbackend"
        vendor_modules = ("fakesdk",)
'''


def test_a_plugin_that_breaks_the_backend_contract_fails_those_tests(tmp_path):
    root = make_plugin_dist(tmp_path / "site", "broken-backend",
                            {"brokenbackend": "brokenbackend"},
                            {"brokenbackend.py": BROKEN_BACKEND, "fakesdk.py": ""})
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_broken.py").write_text(textwrap.dedent(CONTRACT_RUN), encoding="utf-8")
    only = "|".join(["loads", "imports", "backend_info", "detect", "benchmark_declines",
                     "template_declines", "fills_every_slot"])
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider",
         "--rootdir", str(tests), "-k", only.replace("|", " or "), str(tests)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, **pythonpath_env(root)})
    failed = set(re.findall(r"^FAILED \S+::TestBroken::(\w+)", proc.stdout, re.MULTILINE))
    assert failed == {"test_module_imports_without_the_vendor_sdk",
                      "test_detect_reports_its_devices_and_explains_absence",
                      "test_benchmark_declines_another_backends_request",
                      "test_template_declines_another_backend",
                      "test_template_fills_every_slot_every_pipeline_requires"}, proc.stdout
    assert "2 passed" in proc.stdout, proc.stdout  # it loads, and its info is valid
