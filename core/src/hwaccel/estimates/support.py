"""Which backends support a model: what the plugins declare, overridden by measurements.

For every backend detection reported, present or absent:

* **declared**: a pipeline plugin claims the model (it has a workload) and the backend's
  template part fills every slot the pipeline's test template needs, exactly what
  ``hwaccel generate`` composes (:func:`hwaccel.generating.generate.parts_for`);
* **system_available**: the backend has an available device, else detection's reason;
* **measured**: the latest history row of the model on each of the backend's devices (rows
  of this machine's devices, by hardware fingerprint, when the backend is present here). A
  failure there (a crash, a timeout, an out-of-memory kill, a failed generated test, a
  failed conversion) makes that device incompatible, with the recorded reason; a pass
  confirms it; a combination never tried (``not-tested``) changes nothing;
* **memory**: a device whose total memory is below the estimated peak cannot hold the model.

A backend is ``compatible`` when it is declared and not every device that was measured or
estimated has been ruled out. Nothing here is written by hand per family.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hwaccel.estimates.calibration import device_label, has_own_memory
from hwaccel.hardware.detection import DetectionReport
from hwaccel.plugins import Plugins
from hwaccel.types import Classification

MIB = 2**20


@dataclass(frozen=True)
class BackendSupport:
    """Whether one backend can run one model, and why (see the module docstring).

    ``ruled_out`` maps device labels to the reason that device cannot run the model.
    """

    backend: str
    compatible: bool
    system_available: bool
    declared: bool
    reasons: tuple[str, ...]
    measured: dict[str, str] = field(default_factory=dict)
    ruled_out: dict[str, str] = field(default_factory=dict)
    devices: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {"compatible": self.compatible, "system_available": self.system_available,
                "declared": self.declared, "reasons": list(self.reasons),
                "measured": dict(self.measured), "ruled_out": dict(self.ruled_out),
                "devices": list(self.devices)}


def declared_support(plugins: Plugins, classification: Classification,
                     backend: str) -> tuple[bool, str]:
    """Whether the plugins compose a test for the model on ``backend``, and the reason."""
    from hwaccel.errors import HwaccelError
    from hwaccel.generating.generate import parts_for

    if not classification.pipeline or not classification.workload:
        return False, f"no pipeline runs the model: {classification.reason}"
    try:
        pipeline_part, backend_part, _ = parts_for(plugins, backend, classification.pipeline)
    except HwaccelError as exc:
        return False, str(exc)
    return True, (f"declared: pipeline {classification.pipeline!r} "
                  f"({pipeline_part.plugin}) and backend {backend!r} "
                  f"({backend_part.plugin}) compose")


def _too_big(estimate: Any, report: DetectionReport, hardware: Any) -> str | None:
    """Why a device's total memory cannot hold the estimated peak, or ``None``."""
    from hwaccel.estimates.resources import host_memory

    if has_own_memory(hardware) and estimate.device_peak_mb is not None \
            and hardware.memory_total_bytes is not None \
            and estimate.device_peak_mb > hardware.memory_total_bytes / MIB:
        return (f"needs {estimate.device_peak_mb:,.0f} MiB of device memory; the device has "
                f"{hardware.memory_total_bytes / MIB:,.0f} MiB in all")
    _, total = host_memory(report)
    if estimate.peak_mb is not None and total is not None and estimate.peak_mb > total:
        return (f"needs {estimate.peak_mb:,.0f} MiB; the machine has {total:,.0f} MiB of "
                "memory in all")
    return None


def backend_support(plugins: Plugins, report: DetectionReport, classification: Classification,
                    history: Iterable[dict[str, Any]], estimates: Iterable[Any] = ()
                    ) -> dict[str, BackendSupport]:
    """Support of every detected backend for one model.

    :param history: the model's latest history rows per (backend, device, fingerprint)
        (:meth:`hwaccel.history.store.Store.latest_results` with ``by_fingerprint``).
    :param estimates: :class:`~hwaccel.estimates.resources.ResourceEstimate` s of the model on
        available devices.
    """
    from hwaccel.hardware.devices import absence_reason
    from hwaccel.history.provenance import fingerprint
    from hwaccel.history.report import cell_status
    from hwaccel.running.matrix import device_label as label_of

    rows = list(history)
    by_device = {e.device: e for e in estimates}
    out = {}
    for backend in dict.fromkeys(h.backend for h in report.hardware):
        declared, why = declared_support(plugins, classification, backend)
        available = report.available(backend)
        reasons = [why]
        if not available:
            reasons.append(absence_reason(report, backend))
        measured: dict[str, str] = {}
        ruled_out: dict[str, str] = {}
        here = {fingerprint(h) for h in available}
        for row in rows:
            # this machine's devices speak for themselves; for a backend absent here, what
            # other machines recorded is all there is
            if row.get("hardware") != backend or (here and row.get("hardware_fingerprint")
                                                  not in here):
                continue
            label = label_of(backend, str(row.get("device")))
            status, reason = cell_status(row)
            if status == "pass":
                measured[label] = "pass"
            elif status == "fail":
                measured[label] = f"fail: {reason}"
                ruled_out[label] = (f"failed in the history (run {str(row.get('run_id'))[:8]}): "
                                    f"{reason}")
        for hardware in available:
            estimate = by_device.get(device_label(hardware))
            big = _too_big(estimate, report, hardware) if estimate is not None else None
            if big:
                ruled_out.setdefault(device_label(hardware), big)
        considered = set(measured) | {device_label(h) for h in available}
        compatible = declared and (not considered or bool(considered - set(ruled_out)))
        reasons += [f"{label}: {why}" for label, why in ruled_out.items()]
        out[backend] = BackendSupport(
            backend=backend, compatible=compatible, system_available=bool(available),
            declared=declared, reasons=tuple(reasons), measured=measured, ruled_out=ruled_out,
            devices=tuple(device_label(h) for h in available))
    return out

