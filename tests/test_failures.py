"""Whose failure it is: attribution of exceptions by stage, library and origin."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hwaccel.kit import failures
from hwaccel.kit.failures import AttributedError, attribute, blame_reference, stage


def raise_from(module_name: str, exc: BaseException) -> BaseException:
    """``exc`` as raised by code whose module is ``module_name`` (its innermost frame)."""
    code = compile("def fail(exc):\n    raise exc\n", f"<{module_name}>", "exec")
    scope: dict = {"__name__": module_name}
    exec(code, scope)  # noqa: S102 - a function whose frame carries that module name
    try:
        scope["fail"](exc)
    except BaseException as raised:  # noqa: BLE001 - returned for the test to inspect
        return raised
    raise AssertionError("did not raise")


def test_a_module_that_is_not_installed_names_its_pip_package():
    category, message = attribute(ModuleNotFoundError("No module named 'PIL'", name="PIL"),
                                  failures.HARNESS)
    assert category == "missing-dependency"
    assert message.endswith("pip install pillow")


def test_transformers_requires_message_names_the_pip_package():
    exc = ImportError("\nTimmBackbone requires the timm library but it was not found in your "
                      "environment. You can install it with pip:\n`pip install timm`. Please "
                      "note that you may need to restart your runtime after installation.\n")
    category, message = attribute(exc, failures.BACKEND)
    assert category == "missing-dependency"
    assert message == ("TimmBackbone requires the timm library but it was not found in your "
                       "environment: pip install timm")


def test_a_missing_library_inside_another_error_is_still_found():
    try:
        try:
            raise ModuleNotFoundError("No module named 'librosa'", name="librosa")
        except ImportError as inner:
            raise RuntimeError("feature extraction failed") from inner
    except RuntimeError as outer:
        category, message = attribute(outer, failures.HARNESS)
    assert (category, message.split(": ")[-1]) == ("missing-dependency", "pip install librosa")


def test_hwaccels_own_missing_modules_are_not_optional_libraries():
    exc = ModuleNotFoundError("No module named 'hwaccel_pipeline_x'", name="hwaccel_pipeline_x")
    assert attribute(exc, failures.HARNESS)[0] == "harness"


def test_memory_errors_are_out_of_memory():
    assert attribute(MemoryError(), failures.MODEL)[0] == "oom"


def test_an_earlier_attribution_wins():
    exc = AttributedError("backend", "conversion: the converter refused")
    assert attribute(exc, failures.HARNESS) == ("backend", "conversion: the converter refused")


def test_where_an_exception_was_raised_decides_for_unattributed_ones():
    ours = raise_from("hwaccel_pipeline_text.workload", ValueError("bad input"))
    generated = raise_from("test_hf_tiny_bert_cpu", AssertionError("check"))
    theirs = raise_from("openvino.frontend", RuntimeError("unsupported op"))
    assert failures.raised_by_hwaccel(ours) and failures.raised_by_hwaccel(generated)
    assert not failures.raised_by_hwaccel(theirs)
    assert failures.category_of(ours) == "harness"
    assert failures.category_of(theirs) == "backend"
    assert failures.where(theirs).startswith("openvino.frontend:")


def test_a_stage_attributes_what_escapes_it_and_names_itself():
    with pytest.raises(AttributedError) as caught, stage("inputs", failures.HARNESS):
        raise KeyError("image_size")
    assert caught.value.category == "harness" and caught.value.stage == "inputs"
    assert caught.value.message.startswith("inputs: KeyError: 'image_size' (at ")


def test_a_stage_may_decide_by_the_exception():
    decide = lambda exc: failures.blame_by_frame(exc, failures.BACKEND)  # noqa: E731
    vendor = raise_from("onnxruntime.capi", RuntimeError("session refused"))
    with pytest.raises(AttributedError) as caught, stage("placement", decide):
        raise vendor
    assert caught.value.category == "backend"


def test_a_stage_lets_interrupts_through():
    with pytest.raises(KeyboardInterrupt), stage("device", failures.BACKEND):
        raise KeyboardInterrupt


@pytest.mark.parametrize("tiny, source, origin, expected", [
    (True, "processor", "transformers.models.bert", "harness"),   # hwaccel's tiny config
    (False, "processor", "transformers.models.bert", "model"),    # the model's own processor
    (False, "processor-class", "transformers.models.bert", "model"),
    (False, "synthetic", "transformers.models.bert", "harness"),  # hwaccel made the inputs
    (False, "processor", "hwaccel_pipeline_text.workload", "harness"),  # hwaccel's code
])
def test_the_cpu_reference_blames_the_model_only_on_its_own_inputs(tiny, source, origin,
                                                                    expected):
    workload = SimpleNamespace(ref=SimpleNamespace(is_tiny=tiny), input_source=source)
    exc = raise_from(origin, ValueError("You have to specify pixel_values"))
    assert blame_reference(exc, workload) == expected


@pytest.mark.parametrize("status, category", [("timeout", "timeout"), ("oom", "oom"),
                                              ("killed", "crash"), ("crash", "crash")])
def test_job_ends_map_to_failure_categories(status, category):
    assert failures.job_end_category(status) == category
