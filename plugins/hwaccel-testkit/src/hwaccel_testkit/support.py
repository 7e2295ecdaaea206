"""What both contracts share: loading plugins, a clean import in a subprocess, generated files.

Everything goes through the installed entry points and the core's public calls, as the core
itself uses a plugin: ``hwaccel.plugins.load`` (narrowed by ``HWACCEL_LOAD_PLUGINS`` when a
test needs one plugin alone), ``Plugins.call_each``, ``hwaccel.models.classify.classify`` and
``hwaccel.generating.generate``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest

from hwaccel.plugins import PluginRecord, Plugins, load
from hwaccel.types import BackendInfo, PipelineInfo, TemplatePart

LINT_SELECT = "E,F,W,B,UP"
"""The ruff rules generated files pass: the project suite's (pycodestyle, pyflakes, bugbear,
pyupgrade), with ruff's defaults otherwise, since the user's own settings are unknown."""


@contextmanager
def _allow_only(names: Iterable[str] | None) -> Iterator[None]:
    """``HWACCEL_LOAD_PLUGINS`` set to ``names`` inside the block (``None``: left as it is)."""
    if names is None:
        yield
        return
    before = os.environ.get("HWACCEL_LOAD_PLUGINS")
    os.environ["HWACCEL_LOAD_PLUGINS"] = ",".join(names)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HWACCEL_LOAD_PLUGINS", None)
        else:
            os.environ["HWACCEL_LOAD_PLUGINS"] = before


def load_plugins(only: Iterable[str] | None = None) -> Plugins:
    """The installed plugins as the core loads them; ``only`` narrows them to those ids."""
    with _allow_only(only):
        return load()


def record_of(plugins: Plugins, name: str) -> PluginRecord:
    """The load record of entry point ``name``; fails the test when none is installed."""
    import pytest

    for record in plugins.records:
        if record.name == name:
            return record
    pytest.fail(f"no installed distribution has a 'hwaccel' entry point named {name!r} "
                f"(installed: {', '.join(r.name for r in plugins.records) or 'none'})")


def own(plugins: Plugins, name: str, hook: str, **kwargs: Any) -> list[Any]:
    """The answers of plugin ``name`` alone to ``hook``, through the core's guarded call;
    an error that hook raised fails the test with the core's attribution."""
    import pytest

    results, errors = plugins.call_each(hook, **kwargs)
    mine = [e for e in errors if e.plugin == name]
    if mine:
        pytest.fail("; ".join(str(e) for e in mine))
    return [value for plugin, value in results if plugin == name]


def loaded_of_kind(plugins: Plugins, kind: str) -> list[str]:
    """The ids of the loaded plugins of ``kind`` (``backend`` or ``pipeline``)."""
    return [r.name for r in plugins.loaded() if r.kind == kind]


def backend_ids(plugins: Plugins) -> list[str]:
    """Every installed backend: the names their ``hwaccel_backend_info`` declares, and the
    plugin id of a loaded backend plugin that declares none."""
    results, _ = plugins.call_each("hwaccel_backend_info")
    declared = {plugin: info.name for plugin, info in results if isinstance(info, BackendInfo)}
    return sorted({declared.get(name, name) for name in loaded_of_kind(plugins, "backend")})


def pipeline_infos(plugins: Plugins) -> dict[str, PipelineInfo | None]:
    """Every installed pipeline id with its ``hwaccel_pipeline_info`` (``None`` for a loaded
    pipeline plugin that declares none: its plugin id stands for the pipeline)."""
    results, _ = plugins.call_each("hwaccel_pipeline_info")
    declared = {plugin: info for plugin, info in results if isinstance(info, PipelineInfo)}
    return {(declared[name].name if name in declared else name): declared.get(name)
            for name in loaded_of_kind(plugins, "pipeline")}


def pipeline_part(plugins: Plugins, pipeline: str, backend: str) -> TemplatePart | None:
    """The pipeline half of the generated test for (``backend``, ``pipeline``)."""
    results, _ = plugins.call_each("hwaccel_template", backend=backend, pipeline=pipeline)
    parts = [p for _, p in results if p.owner == "pipeline" and p.name == pipeline]
    return parts[0] if parts else None


def example_models(plugins: Plugins, pipeline: str, info: PipelineInfo | None,
                   backend: str) -> tuple[str, ...]:
    """The pipeline's example models: its info's, else its template part's."""
    if info is not None and info.example_models:
        return info.example_models
    part = pipeline_part(plugins, pipeline, backend)
    return part.example_models if part is not None else ()


def tiny_first(models: Iterable[str]) -> str | None:
    """The first ``tiny:`` model of ``models``, else the first one, else ``None``."""
    models = list(models)
    return next((m for m in models if m.startswith("tiny:")), models[0] if models else None)


_CLEAN_IMPORT = textwrap.dedent("""\
    import importlib.metadata, json, sys

    name, hook, blocked, watched = sys.argv[1], sys.argv[2], set(sys.argv[3].split(",")) - {""}, \\
        sys.argv[4].split(",")

    class Blocked:
        def find_spec(self, fullname, path=None, target=None):
            if fullname.split(".")[0] in blocked:
                raise ImportError(f"{fullname} is blocked: the module must import without it")
            return None

    sys.meta_path.insert(0, Blocked())
    (point,) = [e for e in importlib.metadata.entry_points(group="hwaccel") if e.name == name]
    module = point.load()
    info = getattr(module, hook, None)
    answer = info() if info is not None else None
    print(json.dumps({"imported": [m for m in watched if m in sys.modules],
                      "answer": type(answer).__name__}))
""")


def clean_import(name: str, hook: str, blocked: Iterable[str],
                 watched: Iterable[str]) -> dict[str, Any]:
    """Import plugin ``name``'s module in a fresh interpreter with ``blocked`` top-level
    modules refused, call its ``hook`` (its info hook, which must answer from constants),
    and return which of ``watched`` modules got imported and the answer's type name.

    :raises AssertionError: with the subprocess's last error line when the import failed.
    """
    proc = subprocess.run([sys.executable, "-c", _CLEAN_IMPORT, name, hook, ",".join(blocked),
                           ",".join(watched)], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 0, (f"importing plugin {name!r} with {sorted(blocked)} blocked "
                                  f"failed: {lines[-1] if lines else proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def generate_file(plugins: Plugins, model: str, backend: str, out: Path) -> Path:
    """Classify ``model`` and write its generated test file for ``backend`` into ``out``."""
    from hwaccel.generating.generate import file_name, render, write_test
    from hwaccel.models.classify import classify

    classification = classify(model, plugins).classification
    source = render(model, classification, backend, plugins)
    return write_test(source, out, file_name(model, backend, set()))


def lint_problems(files: Iterable[Path], select: str) -> str:
    """Compile every file and lint them with ruff's ``select`` rules; return the problems
    (empty when there are none)."""
    files = list(files)
    problems = []
    for path in files:
        try:
            compile(path.read_text(encoding="utf-8"), str(path), "exec")
        except SyntaxError as exc:
            problems.append(f"{path.name}:{exc.lineno}: {exc.msg}")
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache",
                           "--select", select, *map(str, files)],
                          capture_output=True, text=True, timeout=120)
    if ruff.returncode != 0:
        problems.append(ruff.stdout.strip() or ruff.stderr.strip())
    return "\n".join(problems)


class Contract:
    """What both contracts share: the plugin under test, the lint rules, and two ways to
    load it (with every installed plugin, and alone)."""

    plugin: ClassVar[str] = ""
    lint_select: ClassVar[str] = LINT_SELECT

    @pytest.fixture(scope="class")
    @classmethod
    def contract_plugins(cls) -> Plugins:
        """Every installed plugin, loaded by the core."""
        return load_plugins()

    @pytest.fixture(scope="class")
    @classmethod
    def alone(cls) -> Plugins:
        """This plugin loaded alone (its hooks' answers, no other plugin's)."""
        return load_plugins([cls.plugin])
