"""Classification accuracy from a hub name, with and without the class name, offline.

Run: .venv/bin/python benchmarks/name_accuracy.py [LIST.tsv] [--misses]

LIST.tsv (default: benchmarks/hub_models.tsv) has one model per line: name, model class,
expected family, expected pipeline (`None` for none), tab-separated; `#` starts a comment.
Nothing is in the Hugging Face cache (an empty one is used), so the name (and the class, when
given) is all the classifier has. Prints the share of models whose family and pipeline are
both right; the targets of issue 3 are 98% with the class and 90% by name alone.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

DEFAULT_LIST = Path(__file__).with_name("hub_models.tsv")


def read_list(path: Path) -> list[tuple[str, str, str, str | None]]:
    """Return (name, class, family, pipeline) rows."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, cls, family, pipeline = line.split("\t")
            rows.append((name, cls, family, None if pipeline == "None" else pipeline))
    return rows


def main(argv: list[str]) -> int:
    os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="hwaccel-empty-hf-")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from hwaccel.models.classify import classify
    from hwaccel.plugins import load

    paths = [a for a in argv if not a.startswith("--")]
    rows = read_list(Path(paths[0]) if paths else DEFAULT_LIST)
    plugins = load()
    for mode in ("with class", "name alone"):
        right, misses = 0, []
        for name, cls, family, pipeline in rows:
            got = classify(name, plugins,
                           model_class=cls if mode == "with class" else None).classification
            if (got.family, got.pipeline) == (family, pipeline):
                right += 1
            else:
                misses.append(f"  {name}: got {got.family}/{got.pipeline} "
                              f"(type {got.model_type}), expected {family}/{pipeline}")
        print(f"{mode}: {right}/{len(rows)} = {right / len(rows):.1%} family and pipeline right")
        if "--misses" in argv:
            print("\n".join(misses))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
