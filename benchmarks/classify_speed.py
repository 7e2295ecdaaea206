"""Classification budget: every model type of the installed transformers, cold and warm.

Run: .venv/bin/python benchmarks/classify_speed.py
"Cold" builds the auto-table cache for this transformers version (a fresh cache folder);
"warm" reuses it, as every later hwaccel run does. Prints seconds and types per second.
"""

from __future__ import annotations

import os
import tempfile
import time


def main() -> None:
    os.environ["HWACCEL_CACHE_DIR"] = tempfile.mkdtemp(prefix="hwaccel-bench-")
    from hwaccel import autotables
    from hwaccel.classify import classify_ref
    from hwaccel.models import ModelRef
    from hwaccel.plugins import load

    plugins = load()
    start = time.perf_counter()
    tables = autotables.load()
    cold = time.perf_counter() - start
    types = list(tables.config_types)
    start = time.perf_counter()
    labels = {}
    for model_type in types:
        ref = ModelRef(spec=f"tiny:{model_type}", kind="tiny", model_type=model_type,
                       signal="config")
        labels[model_type] = classify_ref(ref, plugins).classification.pipeline
    warm = time.perf_counter() - start
    claimed = sum(1 for p in labels.values() if p)
    print(f"transformers {tables.transformers_version}: {len(types)} model types")
    print(f"cold: building the auto-table cache took {cold:.1f} s")
    print(f"warm: classifying all {len(types)} types took {warm:.2f} s "
          f"({len(types) / warm:.0f} types/s); {claimed} have a pipeline label")


if __name__ == "__main__":
    main()
