"""Source snippets for generated tests on the OpenVINO backend (the pipelines' slots).

The generated test converts the model with :func:`hwaccel_openvino.place_for_workload` for
the call its workload makes (the IR is cached on disk), compiles it for ``DEVICE`` in fp32 and
runs it through :class:`hwaccel_openvino.OpenVINOModel`. ``DEVICE`` is
``HWACCEL_OPENVINO_DEVICE`` when set, else OpenVINO's first device.
"""

SNIPPETS = {
    "imports": """\
import torch
from hwaccel.types import Classification
from hwaccel.kit.workloads import load_workload""",
    "availability": '''\
def _openvino_devices() -> tuple[list[str], str | None]:
    """OpenVINO's devices, or none and the reason."""
    try:
        import openvino
    except ImportError as exc:
        return [], f"openvino is not installed ({exc})"
    try:
        devices = list(openvino.Core().available_devices)
    except Exception as exc:  # the runtime's own message is the reason
        return [], f"openvino {openvino.__version__}: Core() failed: {exc}"
    if not devices:
        return [], f"openvino {openvino.__version__}: Core().available_devices is empty"
    return devices, None


_DEVICES, _NO_DEVICE = _openvino_devices()
DEVICE = os.environ.get("HWACCEL_OPENVINO_DEVICE") or (_DEVICES or ["CPU"])[0]


def unavailable_reason() -> str | None:
    """Why OpenVINO cannot run DEVICE here, or None."""
    if _NO_DEVICE:
        return _NO_DEVICE
    if DEVICE not in _DEVICES:
        return f"OpenVINO device {DEVICE} is not among {', '.join(_DEVICES)}"
    return None''',
    "placement": '''\
def place_model(model):
    """Convert the model for its workload's call (IR cached), compile on DEVICE."""
    import hwaccel_openvino

    workload = load_workload(MODEL, Classification.from_dict(CLASSIFICATION))
    example = workload.make_inputs(BATCH_SIZE, SEQ_LEN)
    return hwaccel_openvino.place_for_workload(model, workload, example,
                                               model_ref=MODEL, device=DEVICE)


def place_inputs(inputs):
    """OpenVINO reads the CPU tensors as they are."""
    return inputs''',
    "synchronize": '''\
def synchronize() -> None:
    """OpenVINO's infer() returns when the outputs are ready."""''',
    "cleanup": '''\
def release(model) -> None:
    """Drop the compiled graphs and the PyTorch model they came from."""
    model.release()''',
    "tolerance": '''\
# OpenVINO compiles in fp32 (INFERENCE_PRECISION_HINT f32) but orders and fuses
# operations differently from PyTorch. Measured at batch 2, length 16 on 16 models:
# at most 1.2e-6 of the largest reference value (MiniLM 4.4e-6 of 5.6, a 4-step
# UNet loop 2.7e-5 of 78).
ATOL = 1e-5
RTOL = 1e-4''',
}
