"""Render runnable pytest files for (model, backend) from the plugins' template parts.

The pipeline plugin supplies the test body (a Jinja2 template) and names the slots it needs;
the backend plugin supplies source for those slots (device set-up, placement, sync, clean-up,
tolerances). The core wraps both in one frame. Every value that comes from the user or from a
model's files reaches the template only as a Python literal made by ``repr``, so a model name
cannot inject code; file names are sanitised and always land inside the output folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import pprint
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from hwaccel.errors import HwaccelError, MissingSlotError, UsageError
from hwaccel.kit.exposure import FEATURES, PYTORCH_MODULE
from hwaccel.plugins import HookError, Plugins
from hwaccel.types import Classification, TemplatePart

SLOT_ORDER = ("imports", "availability", "placement", "synchronize", "cleanup", "tolerance")
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("hwaccel.generating", "templates"),
                          undefined=jinja2.StrictUndefined, autoescape=False,
                          keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class GeneratedFile:
    """One written test file."""

    model: str
    backend: str
    pipeline: str
    path: str


def parts_for(plugins: Plugins, backend: str, pipeline: str
              ) -> tuple[TemplatePart, TemplatePart, list[HookError]]:
    """Return the (pipeline part, backend part) for a combination, or raise a clear error."""
    parts, errors = plugins.call_each("hwaccel_template", backend=backend, pipeline=pipeline)
    pipeline_parts = [p for _, p in parts if p.owner == "pipeline" and p.name == pipeline]
    backend_parts = [p for _, p in parts if p.owner == "backend" and p.name == backend]
    failed = "; ".join(str(e) for e in errors)
    if not pipeline_parts:
        raise UsageError(f"no loaded plugin provides a test template for pipeline "
                           f"{pipeline!r}{': ' + failed if failed else ''}")
    if not backend_parts:
        raise UsageError(f"no loaded plugin provides template snippets for backend "
                           f"{backend!r}{': ' + failed if failed else ''}")
    pipeline_part, backend_part = pipeline_parts[0], backend_parts[0]
    if pipeline_part.template is None:
        raise HwaccelError(f"pipeline plugin {pipeline_part.plugin!r} gave no template")
    missing = [s for s in pipeline_part.required_slots if s not in backend_part.snippets]
    if missing:
        raise MissingSlotError(f"backend {backend!r} lacks {', '.join(map(repr, missing))} "
                               f"required by pipeline {pipeline!r}")
    return pipeline_part, backend_part, errors


def render(model: str, classification: Classification, backend: str, plugins: Plugins) -> str:
    """Return the source of the generated test module for one model on one backend."""
    pipeline = classification.pipeline
    if not pipeline or not classification.workload:
        raise UsageError(f"cannot generate a test for {model!r}: {classification.reason}")
    pipeline_part, backend_part, _ = parts_for(plugins, backend, pipeline)
    lit = {"model": repr(model), "backend": repr(backend), "pipeline": repr(pipeline),
           "pipeline_plugin": repr(pipeline_part.plugin),
           "backend_plugin": repr(backend_part.plugin)}
    slots = dict(backend_part.snippets)
    slot_order = [s for s in SLOT_ORDER if s in slots] + sorted(set(slots) - set(SLOT_ORDER))
    # The pipeline's template may branch on the classification but emits values only via `lit`.
    body = _ENV.from_string(pipeline_part.template).render(
        lit=lit, classification=classification.to_dict())
    exposes = PYTORCH_MODULE if backend_part.exposes is None else backend_part.exposes
    source = _ENV.get_template("test_module.py.j2").render(
        version=importlib.metadata.version("hwaccel-core"), lit=lit,
        exposes=repr(tuple(exposes)), features=pprint.pformat(FEATURES, width=76),
        classification=pprint.pformat(classification.to_dict(), width=88, sort_dicts=True),
        slots=slots, slot_order=slot_order, body=body.strip("\n"),
        imports=_merge_imports(slots.get("imports", ""),
                               pipeline_part.snippets.get("imports", "")))
    try:
        compile(source, f"<generated test for {model!r}>", "exec")
    except SyntaxError as exc:
        raise HwaccelError(f"the template of pipeline {pipeline!r} and backend {backend!r} "
                           f"produced invalid Python (line {exc.lineno}: {exc.msg})") from None
    return source


def _merge_imports(*blocks: str) -> str:
    """Join import lines of both parts, each line once, in first-seen order."""
    lines = (line.rstrip() for block in blocks for line in block.splitlines())
    return "\n".join(dict.fromkeys(line for line in lines if line))


def file_name(model: str, backend: str, taken: set[str]) -> str:
    """Return a safe, unique ``test_hf_<model>_<backend>.py`` name."""
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:60] or "model"
    backend_slug = re.sub(r"[^a-z0-9]+", "_", backend.lower()).strip("_") or "backend"
    name = f"test_hf_{slug}_{backend_slug}.py"
    if name in taken:
        digest = hashlib.sha1(model.encode()).hexdigest()[:8]
        name = f"test_hf_{slug}_{digest}_{backend_slug}.py"
    return name


def write_test(source: str, out_dir: Path, name: str) -> Path:
    """Write ``source`` as ``out_dir/name``; refuse any path that would leave ``out_dir``."""
    out_dir = out_dir.expanduser()
    target = (out_dir / name).resolve()
    if target.parent != out_dir.resolve() or not re.fullmatch(r"test_[a-z0-9_]+\.py", name):
        raise UsageError(f"refusing to write {name!r} outside {out_dir}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        target.write_text(source, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target
