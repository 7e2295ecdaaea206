"""Source snippets for generated tests on the CUDA backend (slots of the pipelines' templates).

The generated test runs on ``cuda:0``, the first GPU the process sees (choose it with
``CUDA_VISIBLE_DEVICES``), in fp32, and skips with the runtime's own reason where torch
cannot use an NVIDIA GPU. Placement, synchronisation, clean-up and tolerances are the shared
torch-GPU ones (:data:`hwaccel.kit.torchgpu.SHARED_SNIPPETS`).
"""

from hwaccel.kit.torchgpu import SHARED_SNIPPETS

AVAILABILITY = '''\
DEVICE = "cuda:0"  # the first GPU this process sees (see CUDA_VISIBLE_DEVICES)


def unavailable_reason() -> str | None:
    """Why this machine cannot run the test on an NVIDIA GPU (None when it can)."""
    if torch.version.hip is not None:
        return (f"torch {torch.__version__} is a ROCm (HIP {torch.version.hip}) build: "
                "AMD GPUs are tested with --backend rocm")
    if torch.version.cuda is None:
        return (f"torch {torch.__version__} is a CPU-only build "
                "(torch.version.cuda is None): no CUDA")
    if not torch.cuda.is_available():
        try:
            torch.cuda.init()
        except Exception as exc:  # the driver's own words
            return f"torch (CUDA {torch.version.cuda}) cannot use CUDA: {exc}"
        return "no CUDA device is visible (check CUDA_VISIBLE_DEVICES)"
    return None'''

SNIPPETS = {**SHARED_SNIPPETS, "availability": AVAILABILITY}
