"""Source snippets for generated tests on the QNN backend (slots of the pipelines' templates).

The generated test uses this distribution at run time: detection says whether a QNN device
is there (the test skips with the reason when not) and ``place_model`` exports the model for
the test's batch size and sequence length, then opens it with the QNN provider only.
"""

SNIPPETS = {
    "imports": "import functools\n\nimport torch",
    "availability": '''\
DEVICE = "qnn"


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """Why no QNN device can run this test (detection's reason), or None."""
    try:
        from hwaccel_qnn.detect import detect_qnn
    except ImportError:
        return "hwaccel-qnn is not installed"
    infos = detect_qnn()
    return None if any(info.available for info in infos) else infos[0].reason''',
    "placement": '''\
def place_model(model):
    """Export the model for this file's fixed input shapes and open it on QNN."""
    from hwaccel_qnn.runtime import load_on_qnn

    workload = load_workload(MODEL, Classification.from_dict(CLASSIFICATION))
    return load_on_qnn(model, workload, BATCH_SIZE, SEQ_LEN, model_ref=MODEL)


def place_inputs(inputs):
    """The QNN model takes the CPU tensors and feeds them to ONNX Runtime."""
    return inputs''',
    "synchronize": '''\
def synchronize() -> None:
    """ONNX Runtime's run returns when the outputs are ready."""''',
    "cleanup": '''\
def release(model) -> None:
    """Drop the ONNX Runtime session (the exported graph stays in the cache)."""
    del model''',
    "tolerance": '''\
# QNN's HTP computes fp32 graphs in fp16 (rounding about 1e-3 relative per step).
ATOL = 2e-2
RTOL = 1e-2''',
}
