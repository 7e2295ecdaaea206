"""Devices that are a vendor's simulator of the hardware, and latencies measured on one.

hwaccel simulates nothing. Some vendors ship their own simulator of a device, which runs
the vendor's real compiler and operators on the host CPU. This module names such a device
and every latency measured on it as what they are.

A backend may offer a device that runs the vendor's real compiler and operators in a
simulator on the host (Qualcomm's HTP simulator inside ``onnxruntime-qnn`` on x86_64). What
such a device says about compatibility and accuracy holds for the hardware; its latency is the
simulator's. Detection marks the device (``HardwareInfo.details["simulator"]``), the backend
marks each result measured on it (``BenchmarkResult.details["latency_simulated"]``, with
``latency_of`` saying what it was measured on). Every place that shows a latency labels such
a one, and none ranks, compares or recommends by it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SIMULATOR = "simulator"
LATENCY_SIMULATED = "latency_simulated"
LABEL = " (simulator)"


def is_simulator(hardware: Any) -> bool:
    """Whether a detected device is a simulator of the hardware it is named after."""
    return bool(getattr(hardware, "details", {}).get(SIMULATOR))


def simulated_latency(details: Mapping[str, Any] | str | None) -> str | None:
    """What a result's latency was measured on when that is a simulator (from its
    ``details``, a dict or the JSON text the history stores), else ``None``."""
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            return None
    if not isinstance(details, Mapping) or not details.get(LATENCY_SIMULATED):
        return None
    return str(details.get("latency_of") or "a simulator")


def label(details: Mapping[str, Any] | str | None) -> str:
    """:data:`LABEL` for a latency measured on a simulator, else the empty string."""
    return LABEL if simulated_latency(details) else ""
