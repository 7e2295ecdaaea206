"""``BackendContract``: what every backend plugin does, as tests a plugin's suite subclasses."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from hwaccel.kit.pipeline_parts import BACKEND_SLOTS
from hwaccel.plugins import Plugins
from hwaccel.types import (
    BackendInfo,
    BenchmarkRequest,
    BenchmarkResult,
    BenchmarkSettings,
    Classification,
    HardwareInfo,
    TemplatePart,
)
from hwaccel_testkit import support

OTHER = "hwaccel-testkit-other"  # an id no plugin owns: the request of "another backend"


class BackendContract(support.Contract):
    """Subclass with ``plugin = "<entry-point name>"`` to check a backend plugin.

    Class attributes a subclass may set:

    * ``plugin`` (required): the entry-point name in group ``hwaccel``.
    * ``backend``: the backend id it serves, when it differs from ``plugin``.
    * ``vendor_modules``: top-level modules of the vendor SDK; the plugin module must import
      (and answer ``hwaccel_backend_info``) with them blocked.
    * ``lint_select``: the ruff rules generated files must pass (:data:`support.LINT_SELECT`).
    * ``run_benchmark``: also benchmark ``benchmark_model`` once on the first available
      device (off by default: the contract stays seconds).
    """

    backend: ClassVar[str | None] = None
    vendor_modules: ClassVar[tuple[str, ...]] = ()
    run_benchmark: ClassVar[bool] = False
    benchmark_model: ClassVar[str] = "tiny:bert"

    @property
    def backend_id(self) -> str:
        """The backend this plugin serves."""
        return self.backend or self.plugin

    @pytest.fixture(scope="class")
    @classmethod
    def detected(cls, alone: Plugins) -> list[HardwareInfo]:
        """What this backend detects on this machine."""
        (devices,) = support.own(alone, cls.plugin, "hwaccel_detect") or ([],)
        return devices

    def test_loads_through_its_entry_point_as_a_backend(self, contract_plugins: Plugins):
        """The installed entry point loads, and its hooks make it a backend."""
        record = support.record_of(contract_plugins, self.plugin)
        assert record.status == "loaded", f"{self.plugin}: {record.status}: {record.error}"
        assert record.kind == "backend", f"{self.plugin} implements {record.hooks}"

    def test_module_imports_without_the_vendor_sdk(self):
        """Importing the plugin and asking its backend info need none of the vendor's
        modules, nor torch (heavy imports belong inside the hooks that use them)."""
        watched = (*self.vendor_modules, "torch")
        outcome = support.clean_import(self.plugin, "hwaccel_backend_info",
                                       self.vendor_modules, watched)
        assert outcome["imported"] == [], f"importing {self.plugin} imported {outcome}"

    def test_backend_info_declares_this_backend(self, alone: Plugins):
        """``hwaccel_backend_info`` gives one valid ``BackendInfo`` named for the backend."""
        answers = support.own(alone, self.plugin, "hwaccel_backend_info")
        assert len(answers) == 1, f"{self.plugin} declares no hwaccel_backend_info"
        info = answers[0]
        assert isinstance(info, BackendInfo)
        assert info.name == self.backend_id
        assert info.description.strip(), "describe the backend in one line"
        assert info.priority is None or isinstance(info.priority, int)
        assert all(isinstance(v, str) and v for v in (*info.versions, *info.aliases))
        assert self.backend_id not in info.aliases

    def test_detect_reports_its_devices_and_explains_absence(self,
                                                             detected: list[HardwareInfo]):
        """``hwaccel_detect`` lists devices of this backend; an unavailable one says why."""
        assert detected, f"{self.plugin} detects nothing: report an absent backend with a reason"
        for info in detected:
            assert isinstance(info, HardwareInfo)
            assert info.backend == self.backend_id, info
            assert info.device and info.name, info
            if not info.available:
                assert info.reason and info.reason.strip(), f"{info.device}: absent, no reason"

    def test_benchmark_declines_another_backends_request(self, alone: Plugins):
        """``hwaccel_benchmark`` answers ``None`` for a device of another backend."""
        hardware = HardwareInfo(backend=OTHER, device=OTHER, name=OTHER, available=True)
        classification = Classification(model=self.benchmark_model, family="text")
        request = BenchmarkRequest(model=self.benchmark_model, hardware=hardware,
                                   classification=classification)
        assert support.own(alone, self.plugin, "hwaccel_benchmark", request=request) == []

    def test_template_declines_another_backend(self, alone: Plugins,
                                               contract_plugins: Plugins):
        """``hwaccel_template`` gives no backend part for another backend's id."""
        for pipeline in support.pipeline_infos(contract_plugins) or {OTHER: None}:
            parts = support.own(alone, self.plugin, "hwaccel_template", backend=OTHER,
                                pipeline=pipeline)
            assert [p for p in parts if p.owner == "backend"] == [], pipeline

    def test_template_fills_every_slot_every_pipeline_requires(self,
                                                               contract_plugins: Plugins):
        """The backend part fills the kit's backend slots and every slot each installed
        pipeline requires."""
        pipelines = support.pipeline_infos(contract_plugins)
        assert pipelines, "no pipeline plugin is installed to compose with"
        for pipeline in pipelines:
            parts = support.own(contract_plugins, self.plugin, "hwaccel_template",
                                backend=self.backend_id, pipeline=pipeline)
            mine = [p for p in parts if isinstance(p, TemplatePart) and p.owner == "backend"]
            assert len(mine) == 1, f"{self.plugin} gives {len(mine)} backend parts"
            assert mine[0].name == self.backend_id
            wanted = support.pipeline_part(contract_plugins, pipeline, self.backend_id)
            required = set(BACKEND_SLOTS) | set(wanted.required_slots if wanted else ())
            missing = sorted(required - set(mine[0].snippets))
            assert missing == [], f"pipeline {pipeline!r} needs slots {missing}"
            assert all(isinstance(s, str) and s.strip() for s in mine[0].snippets.values())

    def test_generated_files_compile_and_lint(self, contract_plugins: Plugins,
                                              tmp_path: Path):
        """The generated test of a tiny example model of every installed pipeline on this
        backend compiles and passes ruff."""
        written = []
        for pipeline, info in support.pipeline_infos(contract_plugins).items():
            model = support.tiny_first(support.example_models(contract_plugins, pipeline, info,
                                                              self.backend_id))
            assert model, f"pipeline {pipeline!r} names no example model"
            written.append(support.generate_file(contract_plugins, model, self.backend_id,
                                                 tmp_path / pipeline))
        assert written
        assert support.lint_problems(written, self.lint_select) == ""

    def test_benchmark_on_an_available_device(self, alone: Plugins,
                                              detected: list[HardwareInfo]):
        """Opt-in (``run_benchmark = True``): one benchmark of ``benchmark_model`` on the
        first available device succeeds with its timings."""
        if not self.run_benchmark:
            pytest.skip("run_benchmark is off (a benchmark takes longer than the contract)")
        available = [info for info in detected if info.available]
        if not available:
            pytest.skip(f"no available {self.backend_id} device: {detected[0].reason}")
        result = self._benchmark(alone, available[0])
        assert isinstance(result, BenchmarkResult)
        assert result.success, f"{result.error_category}: {result.error}"
        assert result.backend == self.backend_id and result.iterations >= 1
        assert result.p50_ms is not None and result.p50_ms > 0

    def _benchmark(self, alone: Plugins, hardware: HardwareInfo) -> Any:
        from hwaccel.models.classify import classify

        everything = support.load_plugins()
        request = BenchmarkRequest(
            model=self.benchmark_model, hardware=hardware,
            classification=classify(self.benchmark_model, everything).classification,
            settings=BenchmarkSettings(warmup=1, min_iterations=2, min_seconds=0.0,
                                       seq_len=8))
        (result,) = support.own(alone, self.plugin, "hwaccel_benchmark", request=request)
        return result
