"""Source snippets for generated tests on the MPS backend (slots of the pipelines' templates)."""

SNIPPETS = {
    "imports": "import platform\nimport warnings\n\nimport torch",
    "availability": '''\
DEVICE = "mps"
# PYTORCH_ENABLE_MPS_FALLBACK=1 runs operators MPS lacks on the CPU without an error.
FALLBACK = os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK", "0").strip()
CPU_FALLBACK = FALLBACK not in {"", "0"}


def unavailable_reason() -> str | None:
    """Why MPS cannot run this test (not macOS, torch without MPS, ...), or None."""
    reasons = []
    if platform.system() != "Darwin":
        reasons.append(f"MPS needs macOS on Apple silicon; this is {platform.system()} "
                       f"{platform.machine()}")
    if not torch.backends.mps.is_built():
        reasons.append(f"torch {torch.__version__} is built without MPS")
    elif not reasons and not torch.backends.mps.is_available():
        reasons.append(f"torch.backends.mps.is_available() is False on macOS "
                       f"{platform.mac_ver()[0]}: MPS needs macOS 12.3+ and a Metal "
                       "GPU")
    return "; ".join(reasons) or None''',
    "placement": '''\
def place_model(model):
    """Move the model to the MPS device in fp32."""
    if CPU_FALLBACK:
        warnings.warn("PYTORCH_ENABLE_MPS_FALLBACK is set: operators MPS lacks run on "
                      "the CPU", stacklevel=2)
    return model.to(DEVICE)


def place_inputs(inputs):
    """Move the tensor inputs to the MPS device."""
    return {name: value.to(DEVICE) if torch.is_tensor(value) else value
            for name, value in inputs.items()}''',
    "synchronize": '''\
def synchronize() -> None:
    """Wait for the GPU to finish the queued work."""
    torch.mps.synchronize()''',
    "cleanup": '''\
def release(model) -> None:
    """Drop the model and return MPS's cached memory to the system."""
    del model
    torch.mps.empty_cache()''',
    "tolerance": '''\
# MPS fp32 kernels reduce in a different order than the CPU's.
ATOL = 1e-4
RTOL = 1e-3''',
}
