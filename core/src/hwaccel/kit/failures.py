"""Whose failure is it: the categories of a failed benchmark row or matrix cell.

Every failure names whose it is:

* ``model``: the model itself raises on the CPU reference in eager PyTorch, with inputs
  built as its own processor builds them (a bug of the model's code, or a model that needs
  data hwaccel cannot make);
* ``backend``: the backend's converter or runtime refused the graph, or its outputs
  diverged beyond tolerance while the CPU reference passed;
* ``harness``: hwaccel could not build the model or its inputs, or a generated check
  assumed something the backend does not expose: hwaccel's own bug;
* ``missing-dependency``: an optional library the model or the backend needs is not
  installed (the message names the pip package);
* ``timeout``, ``oom``, ``crash``: the job ran past its time limit, past its memory limit,
  or died.

Cells that could not be tried are not failures (:data:`NOT_RUN_CATEGORIES`): ``unavailable``
(no such device here), ``detection-failed`` (the backend's plugin raised while detecting, so
whether it has a device is unknown; the message names the error), ``unsupported`` (no plugin
can compose it), ``model-unavailable`` (the weights are not on this machine), ``no-node`` (no
node of a cluster offers the device).

Code that runs a stage of a job wraps it in :func:`stage`, which turns any exception into an
:class:`AttributedError` carrying the category of that stage, unless the exception already
says otherwise (a missing library, an earlier attribution). Where a stage cannot know by
itself, the innermost frame of the traceback decides: code of an hwaccel package is hwaccel's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.types import BenchmarkRequest, BenchmarkResult

HARNESS = "harness"
MODEL = "model"
BACKEND = "backend"
MISSING_DEPENDENCY = "missing-dependency"
TIMEOUT = "timeout"
OOM = "oom"
CRASH = "crash"
FAILURE_CATEGORIES = (HARNESS, MODEL, BACKEND, MISSING_DEPENDENCY, TIMEOUT, OOM, CRASH)
"""The categories of a failure, in the order reports show them (hwaccel's own first)."""
DETECTION_FAILED = "detection-failed"
NOT_RUN_CATEGORIES = ("unavailable", DETECTION_FAILED, "unsupported", "model-unavailable",
                      "no-node")
"""Categories of cells that could not be tried here (no device, a detection that raised, no
plugin to compose them, no weights on this machine, no node of a cluster offering the
device): not failures."""
_JOB_ENDS = {"timeout": TIMEOUT, "oom": OOM, "killed": CRASH, "crash": CRASH}
# import names whose pip distribution is named otherwise
_PIP_NAMES = {"PIL": "pillow", "cv2": "opencv-python", "sklearn": "scikit-learn",
              "yaml": "pyyaml", "skimage": "scikit-image", "google.protobuf": "protobuf",
              "Levenshtein": "levenshtein", "bs4": "beautifulsoup4", "fitz": "pymupdf"}
# transformers' "X requires the Y library but it was not found in your environment"
_REQUIRES = re.compile(r"requires the (\S+?) library but it was not found", re.IGNORECASE)
_PIP_INSTALL = re.compile(r"pip install (-U )?['\"`]?([A-Za-z0-9_.\-\[\]]+)")
_OWN_PACKAGE = re.compile(r"^hwaccel(_[A-Za-z0-9_]+)?$")


class AttributedError(HwaccelError):
    """A failure whose category is known: ``category`` is one of :data:`FAILURE_CATEGORIES`.

    :param stage: the stage of the job it happened in (``inputs``, ``reference``,
        ``conversion``, ...), shown before the message.
    """

    def __init__(self, category: str, message: str, stage: str | None = None):
        super().__init__(message)
        self.category = category
        self.stage = stage
        self.message = message


def one_line(exc: BaseException, limit: int = 400) -> str:
    """The exception's type and message on one line, at most ``limit`` characters."""
    if isinstance(exc, AttributedError):
        return exc.message
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def where(exc: BaseException) -> str:
    """``module:line`` of the innermost frame that raised ``exc``, or ``?``."""
    tb = exc.__traceback__
    if tb is None:
        return "?"
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "?")
    return f"{module}:{tb.tb_lineno}"


def raised_by_hwaccel(exc: BaseException) -> bool:
    """True when the innermost frame of ``exc``'s traceback is code of an hwaccel package
    (``hwaccel``, ``hwaccel_<plugin>``) or of a generated test module."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    top = module.split(".")[0]
    return bool(_OWN_PACKAGE.match(top)) or top.startswith("test_hf_")


def missing_dependency(exc: BaseException) -> str | None:
    """The message of a missing optional library, naming its pip package; else ``None``.

    Recognises ``ModuleNotFoundError`` (a module's import name, mapped to its pip name where
    they differ) and transformers' "requires the X library but it was not found" errors.
    """
    for link in _chain(exc):
        if isinstance(link, ModuleNotFoundError) and link.name:
            top = link.name.split(".")[0]
            if _OWN_PACKAGE.match(top):
                continue  # hwaccel's own packages are not optional libraries
            pip = _PIP_NAMES.get(link.name, _PIP_NAMES.get(top, top))
            return f"the Python module {link.name!r} is not installed: pip install {pip}"
        text = str(link)
        found = _REQUIRES.search(text)
        if isinstance(link, ImportError) and found:
            install = _PIP_INSTALL.search(text)
            pip = install.group(2) if install else _PIP_NAMES.get(found.group(1),
                                                                  found.group(1))
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            head = lines[0].split(". ")[0].rstrip(".")
            return f"{head}: pip install {pip}"
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or during, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def attribute(exc: BaseException, default: str) -> tuple[str, str]:
    """``(category, one-line message)`` of ``exc`` raised in a stage whose failures are
    ``default``'s: an earlier attribution wins, then a missing library, then memory."""
    if isinstance(exc, AttributedError):
        return exc.category, exc.message
    missing = missing_dependency(exc)
    if missing is not None:
        return MISSING_DEPENDENCY, missing
    if isinstance(exc, MemoryError):
        return OOM, f"MemoryError while allocating ({where(exc)})"
    return default, f"{one_line(exc)} (at {where(exc)})"


def blame_by_frame(exc: BaseException, otherwise: str) -> str:
    """``harness`` when hwaccel's own code raised ``exc``, else ``otherwise``."""
    return HARNESS if raised_by_hwaccel(exc) else otherwise


def blame_reference(exc: BaseException, workload: Any) -> str:
    """Whose failure the CPU reference's is: the model's only when the model's own code
    raised it on a real config (not a ``tiny:`` one hwaccel shrank) and the inputs came
    from a processor; hwaccel's otherwise (its config, its inputs or its code)."""
    ref = getattr(workload, "ref", None)
    if raised_by_hwaccel(exc) or getattr(ref, "is_tiny", True):
        return HARNESS
    return MODEL if getattr(workload, "input_source", "synthetic") != "synthetic" else HARNESS


@contextmanager
def stage(name: str, category: str | Callable[[BaseException], str]) -> Iterator[None]:
    """Attribute any exception raised inside to ``category`` (see :func:`attribute`), or
    to what ``category(exc)`` says when it is a function of the exception.

    ``KeyboardInterrupt`` and ``SystemExit`` pass through untouched.
    """
    try:
        yield
    except AttributedError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure leaves here attributed
        default = category(exc) if callable(category) else category
        found, message = attribute(exc, default)
        raise AttributedError(found, f"{name}: {message}", stage=name) from exc


def job_end_category(status: str) -> str:
    """The failure category of a job that ended without a result (timeout, oom, ...)."""
    return _JOB_ENDS.get(status, status)


def category_of(exc: BaseException) -> str:
    """The category of an exception that escaped every stage: an attribution it carries, a
    missing library, else hwaccel's own (harness) when hwaccel's code raised it, else the
    backend's."""
    category, _ = attribute(exc, blame_by_frame(exc, BACKEND))
    return category


def failure(request: BenchmarkRequest, category: str, message: str) -> BenchmarkResult:
    """Return a failed result for ``request`` with an error category and a one-line message;
    it keeps what was asked (batch, length, threads, precision, new tokens), so the row says
    which measurement failed."""
    settings = request.settings
    return BenchmarkResult(model=request.model, backend=request.hardware.backend,
                           device=request.hardware.device, success=False,
                           error_category=category, error=message,
                           batch_size=settings.batch_size, seq_len=settings.seq_len,
                           threads=settings.threads, precision=settings.precision,
                           new_tokens=settings.new_tokens or None,
                           details={"requested_precision": settings.precision})
