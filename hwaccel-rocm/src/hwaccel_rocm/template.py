"""Source snippets for generated tests on the ROCm backend (slots of the pipelines' templates).

ROCm builds of torch name AMD GPUs ``cuda``, so the test runs on ``cuda:0`` (choose the GPU
with ``HIP_VISIBLE_DEVICES``) in fp32, and skips with the runtime's own reason where torch is
not a ROCm build or sees no AMD GPU. Placement, synchronisation, clean-up and tolerances are
the shared torch-GPU ones (:data:`hwaccel.kit.torchgpu.SHARED_SNIPPETS`).
"""

from hwaccel.kit.torchgpu import SHARED_SNIPPETS

AVAILABILITY = '''\
DEVICE = "cuda:0"  # ROCm builds of torch name AMD GPUs "cuda"; see HIP_VISIBLE_DEVICES


def unavailable_reason() -> str | None:
    """Why this machine cannot run the test on an AMD GPU (None when it can)."""
    if torch.version.hip is None:
        return (f"torch {torch.__version__} is not a ROCm build "
                "(torch.version.hip is None)")
    if not torch.cuda.is_available():
        try:
            torch.cuda.init()
        except Exception as exc:  # the runtime's own words
            return f"torch (HIP {torch.version.hip}) cannot use a GPU: {exc}"
        return "no AMD GPU is visible (check HIP_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES)"
    return None'''

SNIPPETS = {**SHARED_SNIPPETS, "availability": AVAILABILITY}
