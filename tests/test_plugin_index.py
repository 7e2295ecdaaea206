"""`hwaccel list-plugins` from the plugin index: a hit loads nothing and prints what a real load
prints; whatever could change the listing makes the next run load for real."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_plugin_dist, pythonpath_env, run_cli
from hwaccel.cli.output import PLAIN_WIDTH, plain_table, rich_table

GOOD_PLUGIN = """
    from hwaccel import HardwareInfo, hookimpl

    @hookimpl
    def hwaccel_detect():
        return [HardwareInfo(backend="indexhw", device="indexhw:0", name="Idx", available=True)]
"""
# what a real load imports and a hit must not
LOADING_MODULES = {"pluggy", "importlib.metadata", "hwaccel.types", "hwaccel.plugins",
                   "hwaccel_cpu", "hwaccel_pipeline_text"}


def listing(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], bool]:
    """Run ``list-plugins ARGS`` and return the process and whether it loaded the plugins:
    imported any of :data:`LOADING_MODULES` (``PYTHONPROFILEIMPORTTIME`` lists the modules a
    process imports on stderr)."""
    proc = run_cli("list-plugins", *args, env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    return proc, bool(imported & LOADING_MODULES)


@pytest.fixture
def cache_env(tmp_path: Path) -> dict[str, str]:
    """An empty cache folder of this test's own."""
    return {"HWACCEL_CACHE_DIR": str(tmp_path / "cache")}


def index_file(env: dict[str, str]) -> Path:
    """The plugin index in the cache folder of ``env``."""
    return Path(env["HWACCEL_CACHE_DIR"]) / "plugin-index.json"


def test_second_run_is_a_hit_printing_what_the_load_printed(cache_env):
    miss, loaded = listing(cache_env)
    assert loaded and miss.returncode == 0
    hit, loaded = listing(cache_env)
    assert not loaded and hit.returncode == 0
    assert hit.stdout == miss.stdout and "│ cpu " in hit.stdout
    miss_json, loaded = listing(cache_env, "--json", "--refresh")
    assert loaded
    hit_json, loaded = listing(cache_env, "--json")
    assert not loaded and hit_json.stdout == miss_json.stdout
    assert json.loads(hit_json.stdout)["prefix"] == sys.prefix
    # the hit prints what the file holds: a sentinel put there is echoed
    data = json.loads(index_file(cache_env).read_text(encoding="utf-8"))
    for entry in data["entries"].values():
        entry["listing"]["core_version"] = "sentinel-9.9"
    index_file(cache_env).write_text(json.dumps(data), encoding="utf-8")
    echoed, loaded = listing(cache_env)
    assert not loaded and "hwaccel sentinel-9.9 plugins" in echoed.stdout


def test_editing_a_plugin_module_or_installing_a_plugin_reloads(cache_env, tmp_path):
    root = tmp_path / "site"
    make_plugin_dist(root, "hwaccel-index-good", {"indexgood": "hwaccel_index_good"},
                     {"hwaccel_index_good.py": GOOD_PLUGIN})
    env = {**cache_env, **pythonpath_env(root)}
    assert listing(env, "--json")[1]
    assert not listing(env, "--json")[1]
    module = root / "hwaccel_index_good.py"
    stat = module.stat()
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert listing(env, "--json")[1]  # the plugin's file changed
    assert not listing(env, "--json")[1]
    make_plugin_dist(root, "hwaccel-index-later", {"indexlater": "hwaccel_index_later"},
                     {"hwaccel_index_later.py": GOOD_PLUGIN})  # installed next to the first
    proc, loaded = listing(env, "--json")
    assert loaded
    statuses = {p["name"]: p["status"] for p in json.loads(proc.stdout)["plugins"]}
    assert statuses["indexgood"] == statuses["indexlater"] == "loaded"


def test_a_corrupt_or_foreign_index_is_a_miss_and_is_rewritten(cache_env):
    first, _ = listing(cache_env)
    for content in ("{not json", json.dumps({"format": "other/1", "entries": {}}),
                    json.dumps({"format": "hwaccel-plugin-index/1", "entries": [1]}),
                    json.dumps({"format": "hwaccel-plugin-index/1",
                                "entries": {"x": {"installed": 1}}})):
        index_file(cache_env).write_text(content, encoding="utf-8")
        proc, loaded = listing(cache_env)
        assert loaded and proc.returncode == 0 and proc.stdout == first.stdout, content
    assert not listing(cache_env)[1]  # the last miss wrote the index again


def test_a_listing_with_a_foreign_shape_is_a_miss(cache_env):
    listing(cache_env)
    stored = json.loads(index_file(cache_env).read_text(encoding="utf-8"))
    good = next(iter(stored["entries"].values()))["listing"]
    for shape in ({"plugins": "none"}, {**good, "plugins": [{"name": "cpu"}]},
                  {**good, "plugins": [{**good["plugins"][0], "hooks": "x"}]},
                  {**good, "executors": [{"name": "local"}]}):
        for entry in stored["entries"].values():
            entry["listing"] = shape
        index_file(cache_env).write_text(json.dumps(stored), encoding="utf-8")
        proc, loaded = listing(cache_env)
        assert loaded and proc.returncode == 0 and "│ cpu " in proc.stdout, shape


def test_an_unwritable_index_is_ignored(cache_env, tmp_path):
    index_file(cache_env).mkdir(parents=True)  # a folder where the file would go
    for _ in range(2):
        proc, loaded = listing(cache_env, "--json")
        assert loaded and proc.returncode == 0 and json.loads(proc.stdout)["plugins"]
    assert [p.name for p in index_file(cache_env).parent.iterdir()] == ["plugin-index.json"]
    below_a_file = tmp_path / "file"
    below_a_file.write_text("", encoding="utf-8")
    proc, loaded = listing({"HWACCEL_CACHE_DIR": str(below_a_file / "cache")}, "--json")
    assert loaded and proc.returncode == 0 and proc.stderr.count("hwaccel:") == 0


@pytest.mark.parametrize("env", [{"HWACCEL_STRICT_PLUGINS": "1"},
                                 {"HWACCEL_TRACE_PLUGINS": "1"},
                                 {"HWACCEL_DISABLE_PLUGINS": "cpu"}])
def test_strict_trace_and_another_selection_load_for_real(cache_env, env):
    listing(cache_env, "--json")
    proc, loaded = listing({**cache_env, **env}, "--json")
    assert loaded and proc.returncode == 0
    statuses = {p["name"]: p["status"] for p in json.loads(proc.stdout)["plugins"]}
    assert statuses["cpu"] == ("disabled" if "HWACCEL_DISABLE_PLUGINS" in env else "loaded")


def test_strict_flag_with_a_broken_plugin_still_fails(cache_env, tmp_path):
    root = make_plugin_dist(tmp_path / "site", "hwaccel-index-broken",
                            {"indexboom": "hwaccel_index_boom"},
                            {"hwaccel_index_boom.py": "raise RuntimeError('broken')\n"})
    env = {**cache_env, **pythonpath_env(root)}
    for _ in range(2):  # a listing with a failed plugin is never stored
        proc, loaded = listing(env, "--json")
        assert loaded and proc.returncode == 1
    proc = run_cli("--strict-plugins", "list-plugins", env=env)
    assert proc.returncode == 3 and "RuntimeError: broken" in proc.stderr


def test_import_hwaccel_imports_nothing_until_a_name_is_used():
    code = ("import sys, hwaccel\n"
            "print(sorted(m for m in sys.modules if m.startswith(('hwaccel.', 'pluggy'))))\n"
            "from hwaccel import hookimpl, BackendInfo, ModelRef\n"
            "print(type(hookimpl).__name__, BackendInfo.__module__, ModelRef.__name__)\n"
            "print(all(name in dir(hwaccel) for name in hwaccel.__all__))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.splitlines() == ["[]", "HookimplMarker hwaccel.types ModelRef", "True"], \
        proc.stderr


@pytest.mark.parametrize("title, columns, cells", [
    ("hwaccel 0.1.0 plugins (/venv)", ["plugin", "version", "error"],
     [["cpu", "0.1.0", "-"], ["text", "10.2.3", "ModuleNotFoundError: No module named 'x'"]]),
    ("none", ["executor", "entry point"], []),
    ("T", ["a"], [["  padded "], [""]]),
])
def test_plain_table_draws_what_rich_draws(title, columns, cells):
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=PLAIN_WIDTH).print(rich_table(title, columns, cells))
    assert "".join(f"{line}\n" for line in plain_table(title, columns, cells)) == out.getvalue()


@pytest.mark.parametrize("title, columns, cells", [
    ("t", ["a"], [["[bold]x[/bold]"]]),  # markup
    ("t", ["a"], [["see :thumbs_up: here"]]),  # an emoji code
    ("t", ["a"], [["wide ✓"]]),
    ("t", ["a"], [["x" * PLAIN_WIDTH]]),  # rich would wrap it
    ("a title longer than the table", ["a"], [["x"]]),
    ("t", ["a", "b"], [["only one"]]),
])
def test_plain_table_leaves_to_rich_what_rich_would_change(title, columns, cells):
    assert plain_table(title, columns, cells) is None
