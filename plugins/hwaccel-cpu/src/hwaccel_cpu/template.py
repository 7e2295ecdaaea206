"""Source snippets for generated tests on the CPU backend (slots of the pipelines' templates)."""

SNIPPETS = {
    "imports": "import torch",
    "availability": '''\
DEVICE = "cpu"


def unavailable_reason() -> str | None:
    """The CPU is always present."""
    return None''',
    "placement": '''\
def place_model(model):
    """Keep the model on the CPU in fp32."""
    return model.to(DEVICE)


def place_inputs(inputs):
    """Keep the inputs on the CPU."""
    return {name: value.to(DEVICE) if torch.is_tensor(value) else value
            for name, value in inputs.items()}''',
    "synchronize": '''\
def synchronize() -> None:
    """CPU calls are synchronous."""''',
    "cleanup": '''\
def release(model) -> None:
    """Nothing to free on the CPU beyond the model itself."""
    del model''',
    "tolerance": '''\
# The CPU backend runs the same fp32 kernels as the reference.
ATOL = 1e-5
RTOL = 1e-4''',
}
