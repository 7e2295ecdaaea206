"""``hwaccel new-plugin``: render a complete, installable plugin distribution to start from.

``backend NAME`` renders ``DIR/hwaccel-NAME``: a working PyTorch backend named NAME (the host
CPU as rendered). ``pipeline NAME`` renders ``DIR/hwaccel-pipeline-NAME``: a pipeline taking
a placeholder model type. Each has its pyproject (the entry point), a README, the package
and ``tests/test_contract.py`` subclassing hwaccel-testkit's contract. The templates are
``hwaccel/generating/scaffold/<kind>/*.j2``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

KINDS = ("backend", "pipeline")
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
MAX_NAME = 40
# The pipeline's placeholder: a small encoder whose tiny model builds offline.
PLACEHOLDER_MODEL_TYPE = "distilbert"
PLACEHOLDER_MODEL_CLASS = "DistilBertModel"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser("new-plugin", help="render a new plugin distribution to start from",
                            description="Render an installable backend or pipeline plugin "
                                        "(pyproject with the entry point, README, package "
                                        "with its hooks, tests/test_contract.py running "
                                        "hwaccel-testkit's contract) into DIR.")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("name", metavar="NAME",
                        help="the plugin id: lowercase letters and digits, words joined by '-'")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="the folder that receives hwaccel-NAME or hwaccel-pipeline-NAME")
    parser.add_argument("--force", action="store_true",
                        help="write into a target folder that is not empty")
    parser.set_defaults(handler=run)


def check_name(name: str) -> None:
    """Refuse a NAME that is not a lowercase id or that an installed plugin already uses.

    :raises UsageError: with the reason.
    """
    import importlib.metadata

    from hwaccel.errors import UsageError
    from hwaccel.plugins import ENTRY_POINT_GROUP

    if len(name) > MAX_NAME or not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"plugin name {name!r} is not a lowercase id (letters and digits, "
                         f"words joined by '-', starting with a letter, at most {MAX_NAME})")
    installed = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if name in installed:
        raise UsageError(f"plugin name {name!r} is already an installed plugin's id")


def render(kind: str, name: str) -> tuple[str, dict[str, str]]:
    """Return the distribution's folder name and its files (relative path -> text)."""
    import importlib.metadata

    import jinja2

    ident = name.replace("-", "_")
    dist = f"hwaccel-{name}" if kind == "backend" else f"hwaccel-pipeline-{name}"
    module = f"hwaccel_{ident}" if kind == "backend" else f"hwaccel_pipeline_{ident}"
    env = jinja2.Environment(loader=jinja2.PackageLoader("hwaccel.generating", "scaffold"),
                             undefined=jinja2.StrictUndefined, autoescape=False,
                             keep_trailing_newline=True)
    values = {"name": name, "dist": dist, "module": module,
              "core_version": importlib.metadata.version("hwaccel-core"),
              "model_type": PLACEHOLDER_MODEL_TYPE, "model_class": PLACEHOLDER_MODEL_CLASS}
    layout = {"pyproject.toml": "pyproject.toml.j2", "README.md": "README.md.j2",
              f"src/{module}/__init__.py": "__init__.py.j2",
              "tests/test_contract.py": "test_contract.py.j2"}
    if kind == "pipeline":
        layout[f"src/{module}/workload.py"] = "workload.py.j2"
        layout[f"src/{module}/test_{module}.py.j2"] = "template.py.j2.j2"
    files = {path: env.get_template(f"{kind}/{template}").render(**values)
             for path, template in layout.items()}
    return dist, files


def run(args: argparse.Namespace) -> int:
    """Check the name and the target, then write the distribution."""
    from hwaccel.errors import UsageError

    check_name(args.name)
    dist, files = render(args.kind, args.name)
    target = args.out.expanduser() / dist
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not args.force:
        raise UsageError(f"{target} is not empty (use --force to write into it)")
    try:
        for relative, text in files.items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    print(f"{args.kind} plugin {args.name!r} written to {target}: pip install -e {target} "
          f"&& hwaccel list-plugins && pytest {target / 'tests'}")
    return 0
