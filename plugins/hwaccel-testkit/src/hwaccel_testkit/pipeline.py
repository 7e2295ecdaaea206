"""``PipelineContract``: what every pipeline plugin does, as tests a plugin's suite subclasses."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from hwaccel.plugins import Plugins
from hwaccel.types import LabelRule, PipelineInfo, TemplatePart
from hwaccel_testkit import support

OTHER = "hwaccel-testkit-other"  # an id no plugin owns: "another pipeline", "another backend"


class PipelineContract(support.Contract):
    """Subclass with ``plugin = "<entry-point name>"`` to check a pipeline plugin.

    Class attributes a subclass may set:

    * ``plugin`` (required): the entry-point name in group ``hwaccel``.
    * ``pipeline``: the pipeline id it serves, when it differs from ``plugin``.
    * ``other_model``: a model of another pipeline, which this one must not claim (default:
      the first ``tiny:`` example model of another installed pipeline).
    * ``heavy_modules``: modules the plugin module must import without.
    * ``lint_select``: the ruff rules generated files must pass (:data:`support.LINT_SELECT`).
    """

    pipeline: ClassVar[str | None] = None
    other_model: ClassVar[str | None] = None
    heavy_modules: ClassVar[tuple[str, ...]] = ("torch", "transformers")

    @property
    def pipeline_id(self) -> str:
        """The pipeline this plugin serves."""
        return self.pipeline or self.plugin

    @pytest.fixture(scope="class")
    @classmethod
    def info(cls, alone: Plugins) -> PipelineInfo:
        """This pipeline's declaration."""
        answers = support.own(alone, cls.plugin, "hwaccel_pipeline_info")
        assert len(answers) == 1, f"{cls.plugin} declares no hwaccel_pipeline_info"
        return answers[0]

    def test_loads_through_its_entry_point_as_a_pipeline(self, contract_plugins: Plugins):
        """The installed entry point loads, and its hooks make it a pipeline."""
        record = support.record_of(contract_plugins, self.plugin)
        assert record.status == "loaded", f"{self.plugin}: {record.status}: {record.error}"
        assert record.kind == "pipeline", f"{self.plugin} implements {record.hooks}"

    def test_module_imports_without_torch_or_transformers(self):
        """Importing the plugin and asking its pipeline info import no heavy library."""
        outcome = support.clean_import(self.plugin, "hwaccel_pipeline_info", (),
                                       self.heavy_modules)
        assert outcome["imported"] == [], f"importing {self.plugin} imported {outcome}"

    def test_pipeline_info_declares_this_pipeline(self, info: PipelineInfo):
        """``hwaccel_pipeline_info`` is valid: its name, a description, its rules, examples."""
        assert isinstance(info, PipelineInfo)
        assert info.name == self.pipeline_id
        assert info.description.strip(), "describe the pipeline in one line"
        assert all(isinstance(rule, LabelRule) for rule in info.takes)
        assert info.example_models, "name example models that load offline (tiny:...)"
        assert isinstance(info.precedence, int)

    def test_example_models_classify_to_this_pipeline(self, info: PipelineInfo,
                                                      contract_plugins: Plugins):
        """Among every installed plugin, each example model is this pipeline's."""
        from hwaccel.models.classify import classify

        for model in info.example_models:
            classification = classify(model, contract_plugins).classification
            assert classification.pipeline == self.pipeline_id, (model, classification.reason)
            assert classification.plugin == self.plugin, (model, classification.plugin)
            assert classification.workload, f"{model}: the claim names no workload"

    def test_declines_a_model_of_another_pipeline(self, alone: Plugins,
                                                  contract_plugins: Plugins):
        """``hwaccel_classify`` claims no model of another pipeline (the plugin alone)."""
        from hwaccel.models.classify import classify

        model = self.other_model or self._other_pipelines_model(contract_plugins)
        if model is None:
            pytest.skip("no other installed pipeline has a tiny example model")
        assert classify(model, contract_plugins).classification.pipeline != self.pipeline_id
        assert classify(model, alone).classification.plugin != self.plugin, model

    def _other_pipelines_model(self, plugins: Plugins) -> str | None:
        for pipeline, info in support.pipeline_infos(plugins).items():
            if pipeline == self.pipeline_id:
                continue
            models = support.example_models(plugins, pipeline, info, OTHER)
            model = next((m for m in models if m.startswith("tiny:")), None)
            if model is not None:
                return model
        return None

    def test_template_answers_for_its_pipeline_only(self, alone: Plugins):
        """``hwaccel_template`` gives this pipeline's template and required slots, and no
        pipeline part for another pipeline id."""
        parts = support.own(alone, self.plugin, "hwaccel_template", backend=OTHER,
                            pipeline=self.pipeline_id)
        mine = [p for p in parts if isinstance(p, TemplatePart) and p.owner == "pipeline"]
        assert len(mine) == 1, f"{self.plugin} gives {len(mine)} pipeline parts"
        assert mine[0].name == self.pipeline_id
        assert mine[0].template and mine[0].template.strip()
        assert mine[0].required_slots, "name the backend slots the template uses"
        others = support.own(alone, self.plugin, "hwaccel_template", backend=OTHER,
                             pipeline=OTHER)
        assert [p for p in others if p.owner == "pipeline"] == []

    def test_generated_files_compile_and_lint(self, info: PipelineInfo,
                                              contract_plugins: Plugins, tmp_path: Path):
        """The generated test of the first example model on every installed backend
        compiles and passes ruff."""
        backends = support.backend_ids(contract_plugins)
        assert backends, "no backend plugin is installed to compose with"
        written = [support.generate_file(contract_plugins, info.example_models[0], backend,
                                         tmp_path / backend) for backend in backends]
        assert support.lint_problems(written, self.lint_select) == ""
