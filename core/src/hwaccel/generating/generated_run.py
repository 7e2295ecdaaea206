"""The command line of a generated test file: ``python test_hf_<model>_<backend>.py ...``.

The predecessor's generated tests took ``--device NAME``, ``--all-hardware`` and ``--save``;
hwaccel's take them too, through this module, so the files stay short and the same for the
same inputs:

* no option: the file's own tests run in this process under pytest, as always (extra
  arguments after ``--`` go to pytest);
* ``--device NAME``: NAME is a backend (``cuda``) or one of its devices as detection names
  it (``webnn``, ``cuda:1``); a device other than the backend's first available one only
  where the backend's tests read ``HWACCEL_DEVICE`` (the web providers; a GPU is chosen
  with the backend's own visibility setting instead). The file's own backend runs this file;
  another backend runs the same model's test rendered from its own plugin's snippets (the
  file ``hwaccel generate MODEL --backend NAME`` writes), in a temporary folder. On absent
  hardware the test skips with the reason, as every generated test does;
* ``--all-hardware``: every backend that detection reports, in its order: a backend with an
  available device runs on its first one; one without is skipped with detection's reason;
  one whose plugin has no snippets for the model's pipeline is skipped with that reason;
* ``--save`` (with ``--db PATH``, else ``HWACCEL_DB`` or hwaccel's default database): each
  backend's outcome becomes a row of the history (``hardware_results`` with ``source`` =
  ``generated-test``, the test's status, summary and time, and whose failure it was; a
  backend that did not run is recorded ``unavailable`` or ``unsupported``), in one run.

With any of these options each backend's tests run in a job process of their own
(:func:`hwaccel.running.runner.run_generated_test`, killed after ``--timeout`` seconds) and one line
per backend says how it fared; the exit status is 1 when a backend's tests failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwaccel.errors import HwaccelError, MissingSlotError, UsageError

if TYPE_CHECKING:
    from hwaccel.hardware.detection import DetectionReport
    from hwaccel.plugins import Plugins
    from hwaccel.types import Classification, HardwareInfo

SOURCE = "generated-test"
DEFAULT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class GeneratedFile:
    """What a generated test file declares about itself."""

    path: Path
    model: str
    backend: str
    classification: dict[str, Any]


@dataclass(frozen=True)
class Target:
    """One backend to test: the device to run on, or why it is not run."""

    backend: str
    hardware: HardwareInfo | None
    skip_category: str | None = None
    skip_reason: str | None = None
    chosen: bool = False  # a device the user named that is not the backend's default one


def main(argv: list[str] | None, file: GeneratedFile, *, batch_size: int, seq_len: int,
         description: str | None = None) -> int:
    """Parse a generated file's options and run its tests (see the module docstring)."""
    from hwaccel.cli import OneLineParser

    parser = OneLineParser(prog=file.path.name, description=description)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--seq-len", type=int, default=seq_len)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--device", metavar="NAME",
                       help="run on this backend (cuda, openvino...) or device (webnn...)")
    where.add_argument("--all-hardware", action="store_true",
                       help="run on every detected backend; the absent ones are skipped")
    parser.add_argument("--save", action="store_true",
                        help="store each backend's outcome in the hwaccel history")
    parser.add_argument("--db", type=Path, help="the history database for --save")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help="seconds one backend's tests may take (default %(default)s)")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (only "
                        "without --device, --all-hardware and --save)")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.seq_len < 1 or not args.timeout > 0:
        parser.error("--batch-size and --seq-len must be at least 1, --timeout above 0")
    if args.db is not None and not args.save:
        parser.error("--db names where --save stores results; add --save")
    os.environ["HWACCEL_BATCH_SIZE"] = str(args.batch_size)
    os.environ["HWACCEL_SEQ_LEN"] = str(args.seq_len)
    if not (args.device or args.all_hardware or args.save):
        import pytest

        return int(pytest.main([str(file.path), "-q", *args.pytest_args]))
    if args.pytest_args:
        parser.error("extra pytest arguments cannot go with --device, --all-hardware or "
                     "--save")
    try:
        return _run_targets(file, args)
    except HwaccelError as exc:
        print(f"hwaccel: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _run_targets(file: GeneratedFile, args: argparse.Namespace) -> int:
    """Run the chosen backends' tests in jobs, print a line each, save when asked."""
    from hwaccel.hardware.detection import detect
    from hwaccel.plugins import get_plugins
    from hwaccel.types import Classification

    plugins = get_plugins()
    report = detect(plugins)
    if args.all_hardware:
        targets = all_hardware(report)
    else:
        targets = [device_target(report, args.device or file.backend)]
    classification = Classification.from_dict(file.classification)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="hwaccel-generated-") as tmp:
        from hwaccel.running.jobs import JobPool

        with JobPool() as pool:
            for target in targets:
                outcome = _run_one(file, target, classification, plugins, Path(tmp), pool,
                                   args.timeout)
                print(f"{target.backend}: {outcome['line']}", flush=True)
                outcomes.append((target, outcome))
    if args.save:
        _save(file, classification, outcomes, args)
    return 1 if any(o["status"] in ("failed", "error") or o["category"] in _JOB_FAILURES
                    for _, o in outcomes) else 0


_JOB_FAILURES = ("timeout", "oom", "crash")


def device_target(report: DetectionReport, name: str) -> Target:
    """The target ``--device NAME`` means: a backend's first available device (else its
    first record), or the device whose name or ``backend:device`` label is NAME.

    :raises UsageError: detection knows no backend or device of that name.
    """
    from hwaccel.estimates.calibration import device_label

    wanted = name.strip().lower()
    records = [h for h in report.hardware if h.backend == wanted]
    if records:
        return _target_of(report, wanted, records)
    named = [h for h in report.hardware
             if wanted in (h.device.lower(), device_label(h).lower())]
    if named:
        found = named[0]
        if found.available:
            default = report.available(found.backend)[0]
            return Target(found.backend, found, chosen=found is not default)
        return Target(found.backend, found, "unavailable",
                      f"{device_label(found)}: absent — "
                      f"{found.reason or 'reported unavailable without a reason'}")
    known = sorted({h.backend for h in report.hardware}
                   | {device_label(h) for h in report.hardware})
    raise UsageError(f"unknown device {name!r}: detection knows {', '.join(known)}")


def all_hardware(report: DetectionReport) -> list[Target]:
    """One target per backend that detection reports, in its order."""
    backends = list(dict.fromkeys(h.backend for h in report.hardware))
    return [_target_of(report, b, [h for h in report.hardware if h.backend == b])
            for b in backends]


def _target_of(report: DetectionReport, backend: str, records: list[HardwareInfo]) -> Target:
    from hwaccel.hardware.devices import absence_reason

    available = [h for h in records if h.available]
    if available:
        return Target(backend, available[0])
    return Target(backend, records[0], "unavailable", absence_reason(report, backend))


def _run_one(file: GeneratedFile, target: Target, classification: Classification,
             plugins: Plugins, tmp: Path, pool: Any, timeout_s: float) -> dict[str, Any]:
    """Run one target's tests; the outcome as a dict (status, summary, message, category,
    line). A target without an available device, or whose plugin cannot compose the
    model's test, is ``skipped`` (not run) with the reason."""
    from hwaccel.generating.generate import file_name, render, write_test
    from hwaccel.running.cells import DEVICE_ENV
    from hwaccel.running.runner import run_generated_test

    if target.skip_reason is not None:
        return _not_run(target.skip_category or "unavailable", target.skip_reason)
    path = file.path
    if target.backend != file.backend:
        try:
            source = render(file.model, classification, target.backend, plugins)
        except (MissingSlotError, UsageError) as exc:
            return _not_run("unsupported", f"no test snippets for this model: {exc}")
        path = write_test(source, tmp, file_name(file.model, target.backend, set()))
    if target.chosen and DEVICE_ENV not in path.read_text(encoding="utf-8"):
        raise UsageError(f"backend {target.backend}'s generated tests run on its first "
                         f"visible device, not on {target.hardware.device!r} by name: choose "
                         "the device with the backend's own setting (see its README section)")
    env = {DEVICE_ENV: target.hardware.device} if target.hardware else {}
    test = run_generated_test(path, timeout_s, pool, env=env)
    line = f"{test.status} ({test.summary}, {test.wall_s:.1f} s)"
    if test.message:
        line += f": {test.message}"
    if test.category:
        line += f" [{test.category}]"
    return {"status": test.status, "summary": test.summary, "message": test.message,
            "category": test.category, "wall_s": test.wall_s, "line": line}


def _not_run(category: str, reason: str) -> dict[str, Any]:
    return {"status": "skipped", "summary": "not run", "message": reason,
            "category": category, "wall_s": None, "line": f"skipped: {reason}"}


def _save(file: GeneratedFile, classification: Classification,
          outcomes: list[tuple[Target, dict[str, Any]]], args: argparse.Namespace) -> None:
    """Store one history row per target, in one run of the history."""
    import platform

    from hwaccel.history.provenance import fingerprint, library_versions
    from hwaccel.history.store import Store
    from hwaccel.kit.paths import default_db_path
    from hwaccel.types import BenchmarkResult

    db = args.db or default_db_path()
    run_id = uuid.uuid4().hex
    versions = library_versions()
    rows = []
    for target, outcome in outcomes:
        hardware = target.hardware
        passed = outcome["status"] == "passed"
        result = BenchmarkResult(
            model=file.model, backend=target.backend,
            device=hardware.device if hardware else target.backend, success=passed,
            error=None if passed else outcome["message"],
            error_category=None if passed else outcome["category"],
            batch_size=args.batch_size, seq_len=args.seq_len, versions=versions,
            hardware_fingerprint=fingerprint(hardware) if hardware else None,
            plugin=hardware.plugin if hardware else None)
        rows.append((result, {"test_status": outcome["status"],
                              "test_summary": outcome["summary"],
                              "test_time_s": outcome["wall_s"]}))
    with Store(db, wait_s=30.0) as store:
        store.start_run(run_id, SOURCE, len(rows), {
            "model": file.model, "file": str(file.path), "batch_size": args.batch_size,
            "seq_len": args.seq_len}, platform.node())
        for result, context in rows:
            store.insert_result(result, classification, run_id, source=SOURCE,
                                node=platform.node(), **context)
        store.finish_run(run_id, "finished")
    print(f"saved {len(rows)} results to {db} (run {run_id})", flush=True)
