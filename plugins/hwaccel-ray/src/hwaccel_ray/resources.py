"""The Ray custom resources a node offers, computed from hwaccel's detection on that node.

Ray fixes a node's resources when the node starts, so ``hwaccel-ray node`` computes them from
the node's detection before it starts Ray. For every available device:

* ``hwaccel_<backend>``: how many devices of that backend the node has (``hwaccel_cpu``,
  ``hwaccel_openvino``, ``hwaccel_cuda``), so that ``ray status`` shows what each node offers;
* ``hwaccel_<backend>__<device>``: 1 per device (``hwaccel_openvino__CPU``,
  ``hwaccel_cuda__cuda_0``). A cell asks for 1 of its device's resource, so Ray places it
  only on a node that has the device, and never runs two cells on one device at once;
* ``hwaccel_host_cpu``: 1 when any device computes on the host's cores (the CPU backend,
  OpenVINO's CPU). Cells of those devices also ask for it, so one node times one of them at a
  time: the CPU cell and the OpenVINO-CPU cell of a node never share its cores.

CUDA and ROCm GPUs are also counted as the node's ``num_gpus``. Cells do not ask for Ray's
``GPU`` resource: Ray would then set ``CUDA_VISIBLE_DEVICES`` to a GPU of its own choosing,
while a cell names its device (``cuda:1``) and its device resource already reserves it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hwaccel.running.cells import HOST_CPU
from hwaccel.types import HardwareInfo

PREFIX = "hwaccel_"
HOST_UNIT = "hwaccel_host_cpu"
GPU_BACKENDS = frozenset({"cuda", "rocm"})


def _part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def backend_resource(backend: str) -> str:
    """``hwaccel_openvino``: the resource that counts a backend's devices on a node."""
    return f"{PREFIX}{_part(backend)}"


def device_resource(backend: str, device: str) -> str:
    """``hwaccel_openvino__CPU``: the resource of one device; a node has 1 of it."""
    return f"{PREFIX}{_part(backend)}__{_part(device)}"


def node_resources(hardware: Iterable[HardwareInfo]) -> dict[str, float]:
    """The custom resources of a node whose detection found ``hardware``."""
    resources: dict[str, float] = {}
    for info in hardware:
        if not info.available:
            continue
        name = backend_resource(info.backend)
        resources[name] = resources.get(name, 0.0) + 1.0
        resources[device_resource(info.backend, info.device)] = 1.0
        if info.compute_resource == HOST_CPU:
            resources[HOST_UNIT] = 1.0
    return resources


def gpu_count(hardware: Iterable[HardwareInfo]) -> int:
    """The node's CUDA and ROCm GPUs, for Ray's ``num_gpus``."""
    return sum(1 for h in hardware if h.available and h.backend in GPU_BACKENDS)


def cell_demand(hardware: HardwareInfo) -> dict[str, float]:
    """What a cell on ``hardware`` asks Ray for: its device, and the host's cores if it
    computes on them."""
    demand = {device_resource(hardware.backend, hardware.device): 1.0}
    if hardware.compute_resource == HOST_CPU:
        demand[HOST_UNIT] = 1.0
    return demand


def offers(resources: dict[str, float], demand: dict[str, float]) -> bool:
    """Whether a node with ``resources`` (its totals) can ever run a task asking ``demand``."""
    return all(resources.get(name, 0.0) >= amount for name, amount in demand.items())
