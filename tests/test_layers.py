"""The core's layers: the plugin API at the top, the kit, the application packages; plugins
import only the API and the kit, and the core names no first-party backend or pipeline."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core" / "src" / "hwaccel"
API_MODULES = {"__init__.py", "__main__.py", "hookspecs.py", "types.py", "plugins.py",
               "errors.py"}
# What a backend or pipeline plugin may import of hwaccel.
ALLOWED = re.compile(r"^hwaccel(\.(hookspecs|types|plugins|errors)|\.kit(\.\w+)*)?$")
# Backends and pipelines (the Ray executor is an application plugin: it drives the matrix).
PLUGIN_SOURCES = [*ROOT.glob("hwaccel-*/src"), ROOT / "plugins" / "hwaccel-cpu" / "src",
                  *ROOT.glob("pipelines/*/src"), *ROOT.glob("tests/plugins/*/src")]


def _first_party_plugin_ids() -> set[str]:
    """Every entry-point name in group ``hwaccel`` of the repository's own distributions."""
    ids = set()
    for pyproject in [*ROOT.glob("hwaccel-*/pyproject.toml"),
                      *ROOT.glob("plugins/*/pyproject.toml"),
                      *ROOT.glob("pipelines/*/pyproject.toml")]:
        project = tomllib.loads(pyproject.read_text())["project"]
        ids.update(project.get("entry-points", {}).get("hwaccel", {}))
    return ids


def _first_party_names() -> set[str]:
    """Plugin ids plus the other names first-party backends give their devices."""
    from hwaccel.plugins import load

    names = _first_party_plugin_ids()
    results, _ = load().call_each("hwaccel_backend_info")
    for plugin, info in results:
        if plugin in names:
            names.update(info.aliases)
    return names


def _docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (module, class, function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_the_top_level_package_holds_only_the_plugin_api_and_subpackages():
    files = {p.name for p in CORE.iterdir() if p.is_file() and p.suffix == ".py"}
    assert files == API_MODULES
    packages = {p.name for p in CORE.iterdir() if (p / "__init__.py").is_file()}
    assert {"kit", "models", "hardware", "running", "estimates", "history", "compat",
            "generating", "cli"} <= packages


def test_backends_and_pipelines_import_only_the_api_and_the_kit():
    offences = []
    for source in PLUGIN_SOURCES:
        for path in source.rglob("*.py"):
            for name in _imports(path):
                if (name == "hwaccel" or name.startswith("hwaccel.")) \
                        and not ALLOWED.match(name):
                    offences.append(f"{path.relative_to(ROOT)}: {name}")
        for path in source.rglob("*.j2"):  # what generated files import
            for name in re.findall(r"^\s*(?:from|import) (hwaccel[\w.]*)", path.read_text(),
                                   re.MULTILINE):
                if not ALLOWED.match(name):
                    offences.append(f"{path.relative_to(ROOT)}: {name}")
    assert PLUGIN_SOURCES and not offences, "\n".join(offences)


def test_the_api_and_the_kit_import_no_application_package_at_import_time():
    """The kit may call into the application inside a function (a composition classifies
    its parts), never at import: importing a plugin loads no application package."""
    offences = []
    modules = [CORE / name for name in API_MODULES - {"__main__.py"}]
    for path in [*modules, *(CORE / "kit").glob("*.py")]:
        name = path.relative_to(CORE)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only: functions may import lazily
            if isinstance(node, ast.ImportFrom) and node.module \
                    and node.module.startswith("hwaccel.") and not ALLOWED.match(node.module):
                offences.append(f"{name}: {node.module}")
    assert not offences, offences


def test_no_first_party_backend_or_pipeline_id_is_a_literal_in_core_code():
    names = _first_party_names()
    assert {"cpu", "text", "web"} <= names  # the scan looks for real ids
    offences = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstring_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in docstrings:
                value = node.value.strip().lower()
                if value in names or value.rstrip(":") in names:
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not offences, "\n".join(offences)


def test_loading_every_plugin_imports_no_application_package():
    import subprocess
    import sys

    code = ("import importlib.metadata as m, json, sys\n"
            "[ep.load() for ep in m.entry_points(group='hwaccel')]\n"
            "print(json.dumps(sorted(k for k in sys.modules if k.startswith('hwaccel.'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    loaded = json.loads(proc.stdout)
    assert loaded and all(ALLOWED.match(name) for name in loaded), loaded
