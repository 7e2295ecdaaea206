"""What ``hwaccel matrix`` shows while it runs: a progress bar, a line per cell, a summary.

The bar names the cell and phase running now and estimates the time left from the cells
done so far. Each finished cell also prints one line on stderr, so a log without a terminal
(CI, a pipe) still shows the run's progress cell by cell.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hwaccel.cli.output import err_console, num, table
from hwaccel.running.cells import device_label


def _cell_name(cell: Any) -> str:
    hardware = cell.request.hardware
    return f"{cell.request.model} on {device_label(hardware.backend, hardware.device)}"


class MatrixProgress:
    """Progress display of one matrix run; ``quiet`` (``--json``) keeps stderr to errors.

    ``show_node`` adds the node each cell ran on (when cells run on other machines).
    """

    def __init__(self, quiet: bool = False, show_node: bool = False):
        self.quiet = quiet
        self.show_node = show_node
        self.progress = Progress(
            SpinnerColumn(), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.description}"), TimeElapsedColumn(), TextColumn("left"),
            TimeRemainingColumn(), console=err_console, transient=True, disable=quiet)
        self.task: TaskID | None = None
        self.count = 0
        self.total = 0

    def note(self, message: str) -> None:
        """Print one line about the run."""
        if not self.quiet:
            self.progress.console.print(message, highlight=False, soft_wrap=True)

    @contextlib.contextmanager
    def live(self, total: int) -> Iterator[None]:
        """Show the bar for ``total`` cells while the body runs."""
        self.total = total
        with self.progress:
            self.task = self.progress.add_task("starting", total=total)
            yield

    def phase(self, cell: Any, phase: str) -> None:
        """A cell entered ``phase`` (test or benchmark)."""
        if self.task is not None:
            self.progress.update(self.task, description=f"{_cell_name(cell)}: {phase}")

    def done(self, outcome: Any) -> None:
        """A cell finished and is recorded (cells decided in advance wait for the summary)."""
        if outcome.cell.skip is not None:
            return
        self.count += 1
        if self.task is not None:
            self.progress.advance(self.task)
        result = outcome.result
        if result.success:
            from hwaccel.hardware.simulators import label

            line = (f"[green]ok[/green] p50 {num(result.p50_ms, 3)} ms{label(result.details)}, "
                    f"peak {num(result.peak_rss_mb, 0)} MiB, test "
                    f"{outcome.context.get('test_summary')}")
        else:
            line = f"[red]fail[/red] {result.error_category}: {result.error}"
        where = f" @ {outcome.context.get('node')}" if self.show_node else ""
        self.note(f"[{self.count}/{self.total}] {_cell_name(outcome.cell)}{where}: {line}")

    def summary(self, outcomes: list[Any], run_id: str, db_path: Path) -> None:
        """Print the table of the tested cells, then one line per backend not tested."""
        tested = [o for o in outcomes if o.cell.skip is None]
        node = ["node"] if self.show_node else []
        table(f"Matrix (run {run_id[:8]}, stored in {db_path})",
              ["model", "pipeline", "device", *node, "result", "test", "p50 ms", "items/s",
               "peak MiB", "max diff", "reason"],
              [[o.result.model, o.cell.request.classification.pipeline,
                device_label(o.result.backend, o.result.device),
                *([o.context.get("node")] if self.show_node else []),
                "pass" if o.result.success else "fail", o.context.get("test_summary"),
                num(o.result.p50_ms, 3), num(o.result.throughput, 1),
                num(o.result.peak_rss_mb, 0),
                f"{o.result.max_abs_diff:.1e}" if o.result.max_abs_diff is not None else None,
                None if o.result.success else f"{o.result.error_category}: {o.result.error}"]
               for o in sorted(tested, key=lambda o: (o.result.model, o.result.device))])
        untested: dict[str, set[str]] = {}
        for o in outcomes:
            if o.cell.skip is not None:
                untested.setdefault(o.result.error or "", set()).add(o.result.model)
        for reason, models in sorted(untested.items()):
            self.note(f"not tested ({len(models)} model{'s' if len(models) > 1 else ''}): "
                      f"{reason}")
