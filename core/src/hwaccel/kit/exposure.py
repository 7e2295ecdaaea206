"""What a backend's loaded model exposes to the checks of a generated test.

A PyTorch backend hands the checks the model itself; a backend that runs a converted graph
(OpenVINO, ONNX Runtime in a browser, QNN) hands them a wrapper that takes the workload's
inputs and returns its outputs, and little else. Each backend declares what its loaded model
exposes in its template part (:attr:`hwaccel.types.TemplatePart.exposes`); a check that
needs something the backend lacks is skipped with the reason, never failed, since the
failure would be the check's assumption, not the hardware's.
"""

from __future__ import annotations

MODULE_INTERNALS = "module-internals"
GENERATE = "generate"
DYNAMIC_SHAPES = "dynamic-shapes"
CACHE_OUTPUTS = "cache-outputs"
FEATURES = {
    MODULE_INTERNALS: "the PyTorch module itself: its submodules, parameters, methods and "
                      "forward hooks",
    GENERATE: "autoregressive decoding (generate)",
    DYNAMIC_SHAPES: "calls of any batch size and sequence length on one loaded model",
    CACHE_OUTPUTS: "the model's cache (keys and values, or recurrent state) as outputs of a "
                   "call with use_cache=True",
}
"""Every feature a check may need, with what it means."""
PYTORCH_MODULE = tuple(FEATURES)
"""What a backend that runs the PyTorch module in eager mode exposes: everything."""


def missing(exposes: tuple[str, ...] | None, needed: tuple[str, ...]) -> tuple[str, ...]:
    """The features of ``needed`` that a backend declaring ``exposes`` lacks.

    A backend that declares nothing (``None``) is taken to run the PyTorch module.
    """
    have = PYTORCH_MODULE if exposes is None else exposes
    return tuple(feature for feature in needed if feature not in have)
