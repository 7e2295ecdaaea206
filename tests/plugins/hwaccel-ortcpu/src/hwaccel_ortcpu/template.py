"""Source snippets for generated tests on ``ortcpu`` (the slots of the pipelines' templates)."""

SNIPPETS = {
    "imports": "import functools\n\nimport torch",
    "availability": '''\
DEVICE = "ortcpu"


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """Why ONNX Runtime's CPU provider cannot run this test, or None."""
    try:
        from hwaccel_ortcpu.detect import detect
    except ImportError:
        return "hwaccel-ortcpu is not installed"
    info = detect()
    return None if info.available else info.reason''',
    "placement": '''\
def place_model(model):
    """Export the model for this file's input shapes; open it in ONNX Runtime."""
    from hwaccel.kit.onnx_session import load_onnx

    workload = load_workload(MODEL, Classification.from_dict(CLASSIFICATION))
    return load_onnx(model, workload, BATCH_SIZE, SEQ_LEN, model_ref=MODEL,
                     providers=["CPUExecutionProvider"])


def place_inputs(inputs):
    """The session takes the CPU tensors."""
    return inputs''',
    "synchronize": '''\
def synchronize() -> None:
    """ONNX Runtime's run returns when the outputs are ready."""''',
    "cleanup": '''\
def release(model) -> None:
    """Drop the session (the exported graph stays in the cache)."""
    del model''',
    "tolerance": '''\
# ONNX Runtime's fp32 kernels (fused, sums reordered) against PyTorch's eager ones.
ATOL = 1e-4
RTOL = 1e-3''',
}
