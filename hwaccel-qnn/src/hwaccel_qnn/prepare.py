"""Export a benchmark's model for QNN in a process of its own.

``python -m hwaccel_qnn.prepare REQUEST.json`` exports (or finds in the cache) the fixed-shape
ONNX graph of the request's model at its batch size and sequence length and prints one JSON
line: ``{"path", "cache_hit", "seconds"}``, or ``{"error", "category"}`` with exit status
1. The QNN
benchmark runs it before measuring, so that the exporter's memory (it traces a second copy of
the graph) stays out of the measured process's high-water mark and the export's time out of
the load time; the measured process then finds the graph in the cache.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hwaccel.errors import HwaccelError
from hwaccel.types import BenchmarkRequest
from hwaccel.workloads import load_workload
from hwaccel_qnn.export import ExportedModel, ExportError
from hwaccel_qnn.runtime import export_for


def prepare(request: BenchmarkRequest) -> ExportedModel:
    """Export the request's model for its settings' fixed shapes, through the disk cache."""
    workload = load_workload(request.model, request.classification)
    workload.prepare()
    return export_for(workload.load_model(), workload, request.settings.batch_size,
                      request.settings.seq_len, model_ref=request.model)


def main(argv: list[str]) -> int:
    """Entry point: read the request file, export, print the outcome as one JSON line."""
    request = BenchmarkRequest.from_dict(json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    try:
        exported = prepare(request)
    except HwaccelError as exc:
        category = "unsupported" if isinstance(exc, ExportError) else "error"
        print(json.dumps({"error": str(exc), "category": category}))
        return 1
    print(json.dumps({"path": str(exported.path), "cache_hit": exported.cache_hit,
                      "seconds": exported.seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
