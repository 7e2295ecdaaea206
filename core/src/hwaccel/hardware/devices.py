"""Choosing a device from the detected hardware, by priority, with every fallback explained.

The predecessor's API is kept: ``HardwareDetector().get_torch_device_with_priority(
priority_list=["cuda", "mps", "cpu"], preferred_index=1)`` returns a device string, and the
module-level :func:`get_torch_device_with_priority` does the same. Both log each fallback
they took with :mod:`logging` (logger ``hwaccel.hardware.devices``, level WARNING). The structured
answer is :func:`select_device`, which returns a :class:`DeviceChoice` holding the chosen
backend, device string and index and, in order, every fallback taken with its reason.

How a choice is made (every backend fact comes from the backend plugins' declarations,
:mod:`hwaccel.hardware.backends`, and their detection records; this module names none):

* The priority list names backends (``cuda``, ``rocm``, ``mps``, ``openvino``, ``cpu``, and
  any other backend a loaded plugin declares or detection reported, such as ``qnn``); the
  default is :func:`default_priority`, the backends that declare a priority, lowest first
  (for hwaccel's own: CUDA, ROCm, MPS, then OpenVINO, then the CPU). Names are
  case-insensitive; an unknown name is a :class:`~hwaccel.errors.UsageError`. The backend
  declared the last resort (the CPU) is appended when the list does not name it, and a note
  says when it was used that way.
* A backend is skipped when none of its devices is available; the fallback line gives the
  reason detection recorded (``cuda: absent — torch 2.13.0+cpu has no CUDA``), the plugin's
  detection error, or that no loaded plugin reports that backend at all.
* Among a backend's available devices, those of the lowest ``rank`` (OpenVINO ranks its GPU,
  then its CPU, then an NPU, the order of its own AUTO device) are candidates; the one whose
  index is ``preferred_index`` is taken; when there is none, the lowest index is taken and a
  fallback line says so (``cuda:1 requested but only 1 device; using cuda:0``, or ``cuda:1
  unavailable — <reason>; using cuda:0``).

Device strings: a record's :attr:`~hwaccel.types.HardwareInfo.address`, as its backend
declared it:

* a backend that runs PyTorch modules writes the ``torch.device`` string (CUDA and ROCm:
  ``cuda:N``, MPS: ``mps``, CPU: ``cpu``), and :attr:`DeviceChoice.is_torch` is true;
  callers that only want those pass :func:`torch_priority`.
* OpenVINO writes ``openvino:NAME``, where ``NAME`` is OpenVINO's own device name (``CPU``,
  ``GPU.0``, ``NPU``): pass :attr:`DeviceChoice.openvino_device` (the part after the colon)
  to ``openvino.Core().compile_model(model, NAME)``. ``torch.device("openvino:CPU")``
  raises, so a caller that only handles torch fails loudly rather than running somewhere
  else.
* Any other backend: the ``device`` field of its detection record, as the backend wrote it.

Nothing here probes hardware itself: the answer comes from a
:class:`~hwaccel.hardware.detection.DetectionReport`, the detection that ``hwaccel detect`` shows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwaccel.errors import HwaccelError, UsageError
from hwaccel.types import HardwareInfo

if TYPE_CHECKING:
    from hwaccel.hardware.detection import DetectionReport

logger = logging.getLogger(__name__)


class NoDeviceError(HwaccelError):
    """No backend of the priority list, nor a last resort, has an available device."""


@dataclass(frozen=True)
class DeviceChoice:
    """The chosen device and every fallback taken on the way, in order.

    :param backend: the backend chosen (``cuda``, ``openvino``, ``cpu``, ...).
    :param device: the device string (see the module docstring): ``cuda:1``, ``mps``,
        ``cpu``, ``openvino:GPU.0``.
    :param index: the device index within the backend, as detection reported it.
    :param fallbacks: one line per fallback taken (a backend skipped, an index not honoured,
        the last resort used); empty when the first choice was available.
    :param hardware: the detection record of the chosen device.
    :param runs_torch: whether the backend declares that its devices run PyTorch modules.
    """

    backend: str
    device: str
    index: int
    fallbacks: tuple[str, ...] = ()
    hardware: HardwareInfo | None = None
    runs_torch: bool = False

    @property
    def is_torch(self) -> bool:
        """Whether :attr:`device` is a ``torch.device`` string."""
        return self.runs_torch

    @property
    def openvino_device(self) -> str | None:
        """The runtime's own name of a device that runs converted graphs: the part of the
        device string after the colon (OpenVINO's ``CPU``, ``GPU.0``), else ``None``."""
        if self.runs_torch or ":" not in self.device:
            return None
        return self.device.split(":", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of the choice."""
        return {"backend": self.backend, "device": self.device, "index": self.index,
                "fallbacks": list(self.fallbacks),
                "hardware": self.hardware.to_dict() if self.hardware else None}

    def __str__(self) -> str:
        return self.device


def default_priority(report: DetectionReport) -> tuple[str, ...]:
    """The default device order of ``report``'s backends: each declares its priority
    (CUDA, ROCm, MPS, then OpenVINO, then the CPU, the last resort, for hwaccel's own)."""
    return report.backend_facts().default_priority()


def torch_priority(report: DetectionReport) -> tuple[str, ...]:
    """:func:`default_priority` without the backends that run no PyTorch module: every
    answer is a ``torch.device`` string."""
    return report.backend_facts().torch_priority()


def _plural(count: int) -> str:
    return f"{count} device" if count == 1 else f"{count} devices"


def absence_reason(report: DetectionReport, backend: str) -> str:
    """Why ``backend`` has no available device, in one line."""
    records = [h for h in report.hardware if h.backend == backend]
    if records:
        reasons = list(dict.fromkeys(h.reason or "reported unavailable without a reason"
                                     for h in records))
        return f"{backend}: absent — {'; '.join(reasons)}"
    error = report.detection_error(backend)
    if error:
        return f"{backend}: detection failed — {error}"
    return (f"{backend}: not detected — no loaded plugin reported it, present or absent "
            f"(is hwaccel-{backend} installed, with a detect hook, and not disabled by "
            "HWACCEL_LOAD_PLUGINS / HWACCEL_DISABLE_PLUGINS?)")


def _pick(report: DetectionReport, backend: str, preferred_index: int,
          fallbacks: list[str]) -> HardwareInfo | None:
    """Return the device of ``backend`` to use, adding a fallback line when one is taken."""
    available = report.available(backend)
    if not available:
        fallbacks.append(absence_reason(report, backend))
        return None
    best = min(h.rank for h in available)
    group = sorted((h for h in available if h.rank == best), key=lambda h: h.index)
    for record in group:
        if record.index == preferred_index:
            return record
    chosen = group[0]
    wanted = f"{backend}:{preferred_index}"
    missing = [h for h in report.hardware if h.backend == backend and not h.available
               and h.index == preferred_index and h.rank == best]
    if missing:
        why = missing[0].reason or "reported unavailable without a reason"
        fallbacks.append(f"{wanted} unavailable — {why}; using {chosen.address}")
    else:
        fallbacks.append(f"{wanted} requested but only {_plural(len(group))}; "
                         f"using {chosen.address}")
    return chosen


def _normalise(priority_list: Iterable[str] | str | None,
               report: DetectionReport) -> list[str]:
    if priority_list is None:
        return list(default_priority(report))
    if isinstance(priority_list, str):
        priority_list = [priority_list]
    names: list[str] = []
    for item in priority_list:
        if not isinstance(item, str):
            raise UsageError(f"priority_list holds {item!r}: backend names are strings")
        name = item.strip().lower()
        if name not in names:
            names.append(name)
    if not names:
        raise UsageError("priority_list is empty: name at least one backend, or pass None "
                         f"for the default order {', '.join(default_priority(report))}")
    known = report.known_backends()
    unknown = [n for n in names if n not in known]
    if unknown:
        hint = ""
        if any(":" in n for n in unknown):
            hint = " (name the backend only; pass the device number as preferred_index)"
        raise UsageError(f"unknown backend {', '.join(repr(n) for n in unknown)} in "
                         f"priority_list{hint}; known backends: {', '.join(known)}")
    return names


def select_device(report: DetectionReport,
                  priority_list: Sequence[str] | str | None = None,
                  preferred_index: int = 0) -> DeviceChoice:
    """Choose a device from ``report`` by priority and return it with every fallback taken.

    :param report: the detection to choose from (:func:`hwaccel.hardware.detection.detect`).
    :param priority_list: backend names, most wanted first; None means
        :func:`default_priority`. The last resort (the CPU) is appended when absent.
    :param preferred_index: the device index wanted within a backend (the second GPU is 1).
    :raises UsageError: an unknown backend name, an empty list, or a negative index.
    :raises NoDeviceError: no backend of the list, nor the last resort, has an available
        device.
    """
    if isinstance(preferred_index, bool) or not isinstance(preferred_index, int) \
            or preferred_index < 0:
        raise UsageError(f"preferred_index must be a device number >= 0, not "
                         f"{preferred_index!r}")
    names = _normalise(priority_list, report)
    facts = report.backend_facts()
    implicit = [b for b in facts.last_resort_names() if b not in names]
    fallbacks: list[str] = []
    for backend in [*names, *implicit]:
        if implicit and backend == implicit[0] and names:
            fallbacks.append(f"none of {', '.join(names)} has an available device; "
                             f"trying {', '.join(implicit)}, the last resort")
        record = _pick(report, backend, preferred_index, fallbacks)
        if record is not None:
            return DeviceChoice(backend=backend, device=record.address, index=record.index,
                                fallbacks=tuple(fallbacks), hardware=record,
                                runs_torch=facts.runs_torch(backend))
    if not fallbacks:
        fallbacks.append("no loaded backend plugin declares a place in the default order "
                         "(`hwaccel list-plugins` shows the loaded ones)")
    raise NoDeviceError("no device available: " + "; ".join(fallbacks))


class HardwareDetector:
    """The predecessor's detector object, over hwaccel's plugin-based detection.

    :param report: a detection to answer from (tests and callers that already detected);
        by default the installed plugins detect on first use, cached like ``hwaccel detect``.
    :param refresh: re-detect instead of using the detection cache.
    """

    def __init__(self, report: DetectionReport | None = None, *, refresh: bool = False):
        self._report = report
        self._refresh = refresh

    def detect(self) -> DetectionReport:
        """Return the detection report (detected once per detector)."""
        if self._report is None:
            from hwaccel.hardware.detection import detect
            from hwaccel.plugins import get_plugins

            self._report = detect(get_plugins(), refresh=self._refresh)
        return self._report

    def is_available(self, backend: str) -> bool:
        """Whether ``backend`` has at least one available device."""
        return bool(self.detect().available(backend.lower()))

    def get_details(self, backend: str) -> dict[str, Any]:
        """Return ``backend``'s records: ``available``, ``reason``, ``device_count`` (the
        available devices) and ``devices`` (every record as a dict, with its ``details``)."""
        report = self.detect()
        name = backend.lower()
        records = [h for h in report.hardware if h.backend == name]
        available = report.available(name)
        return {"available": bool(available),
                "reason": None if available else absence_reason(report, name),
                "device_count": len(available),
                "devices": [h.to_dict() for h in records]}

    def get_cuda_details(self) -> dict[str, Any]:
        """Return the CUDA records, as :meth:`get_details` does for ``cuda``: the backend
        is the one this predecessor method is named for."""
        name = HardwareDetector.get_cuda_details.__name__
        return self.get_details(name.removeprefix("get_").removesuffix("_details"))

    def select_device(self, priority_list: Sequence[str] | str | None = None,
                      preferred_index: int = 0) -> DeviceChoice:
        """Return the :class:`DeviceChoice` of :func:`select_device` on this detection."""
        return select_device(self.detect(), priority_list, preferred_index)

    def get_torch_device_with_priority(self, priority_list: Sequence[str] | str | None = None,
                                       preferred_index: int = 0) -> str:
        """Return the device string by priority and log every fallback taken (WARNING)."""
        choice = self.select_device(priority_list, preferred_index)
        for line in choice.fallbacks:
            logger.warning("device fallback: %s", line)
        logger.info("device chosen: %s (%s)", choice.device, choice.backend)
        return choice.device


def get_torch_device_with_priority(priority_list: Sequence[str] | str | None = None,
                                   preferred_index: int = 0) -> str:
    """Return the device string by priority on the installed plugins' detection.

    The predecessor's function: see :meth:`HardwareDetector.get_torch_device_with_priority`.
    """
    return HardwareDetector().get_torch_device_with_priority(priority_list, preferred_index)
