"""The stored listing of ``hwaccel list-plugins``, shown again while nothing it depends on changed.

A real load of the plugins takes longer than the rest of the command together; the listing it
produces (the plugin records, the executors, hwaccel-core's version and ``sys.prefix``: the
document ``list-plugins --json`` prints) is stored in ``plugin-index.json`` in the cache folder
with a fingerprint of what could change it:

* the installed distributions: every ``*.dist-info`` and ``*.egg-info`` in every ``sys.path``
  folder (their names carry the versions) with the mtime of its ``entry_points.txt`` (which
  installing it again writes anew), and every ``*.pth`` file with its mtime (editable
  installs);
* the file of every module loaded in the process when the listing was made (hwaccel's own,
  pluggy's, and each plugin's: editing an editable plugin counts) with its mtime and size;
* the context, which keys the entry (one file keeps the last :data:`KEPT` contexts):
  ``sys.prefix``, ``sys.path``, the Python version and the plugin selection variables
  (``HWACCEL_LOAD_PLUGINS``, ``HWACCEL_DISABLE_PLUGINS``).

A listing in which a plugin failed or is unavailable is not stored (its cause, a missing
library or a broken file, may lie outside the fingerprint), and strict or traced loading
(``HWACCEL_STRICT_PLUGINS``, ``HWACCEL_TRACE_PLUGINS`` set) neither reads nor writes the file:
those runs always load for real. A file that cannot be read, is corrupt or of another format is
a miss; one that cannot be written is left as it is. A hit imports nothing but this module,
``json`` and the cache folder's helper: no plugin, no pluggy, no ``importlib.metadata``.
"""

from __future__ import annotations

import json
import os
import sys

FILE_NAME = "plugin-index.json"
FORMAT = "hwaccel-plugin-index/1"
KEPT = 8
"""Contexts (interpreters, ``sys.path`` orders, plugin selections) kept in the file."""
BYPASS_VARIABLES = ("HWACCEL_STRICT_PLUGINS", "HWACCEL_TRACE_PLUGINS")
SELECTION_VARIABLES = ("HWACCEL_LOAD_PLUGINS", "HWACCEL_DISABLE_PLUGINS")
STORED_STATUSES = frozenset({"loaded", "disabled"})
LISTING_KEYS = ("core_version", "prefix", "plugins", "executors")
PLUGIN_KEYS = frozenset({"name", "distribution", "version", "kind", "hooks", "status", "error"})
EXECUTOR_KEYS = frozenset({"name", "distribution", "version", "target"})


def _mtime(path: str) -> int | None:
    """The mtime of ``path`` in nanoseconds, ``None`` when it does not exist."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _stamp(path: str) -> list[int] | None:
    """``[mtime_ns, size]`` of a file, ``None`` when it does not exist."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_mtime_ns, stat.st_size]


def search_path() -> list[str]:
    """``sys.path`` with the current folder written out (``''`` means it)."""
    return [folder or os.getcwd() for folder in sys.path]


def installed_stamps() -> list[list[str | int | None]]:
    """The installed distributions and ``.pth`` files of every ``sys.path`` folder: a
    distribution's name (with its version) and the mtime of its ``entry_points.txt``, a
    ``.pth`` file's name and mtime."""
    stamps: list[list[str | int | None]] = []
    for folder in dict.fromkeys(search_path()):
        try:
            names = sorted(os.listdir(folder))
        except OSError:  # missing, or a zip file
            continue
        for name in names:
            path = os.path.join(folder, name)
            if name.endswith((".dist-info", ".egg-info")):  # installed again: a new file
                stamps.append([folder, name, _mtime(os.path.join(path, "entry_points.txt"))])
            elif name.endswith(".pth"):
                stamps.append([folder, name, _mtime(path)])
    return stamps


def context_key() -> str:
    """What selects a stored listing: interpreter, search path and plugin selection."""
    return json.dumps([sys.prefix, sys.version, search_path(),
                       [os.environ.get(name) for name in SELECTION_VARIABLES]])


def loaded_module_files() -> list[list[str | int]]:
    """``[file, mtime_ns, size]`` of every module loaded in this process that has a file."""
    files = {getattr(module, "__file__", None) for module in list(sys.modules.values())}
    stamps = []
    for path in sorted(f for f in files if isinstance(f, str)):
        stamp = _stamp(path)
        if stamp is not None:
            stamps.append([path, *stamp])
    return stamps


def _has_keys(records: object, keys: frozenset[str]) -> bool:
    """Whether ``records`` is a list of dicts, each with at least ``keys``."""
    return isinstance(records, list) and all(
        isinstance(record, dict) and keys <= record.keys() for record in records)


def _is_listing(value: object) -> bool:
    """Whether ``value`` has the shape of a stored listing (a hand-edited file may not)."""
    return (isinstance(value, dict) and tuple(value) == LISTING_KEYS
            and _has_keys(value["plugins"], PLUGIN_KEYS)
            and all(isinstance(plugin["hooks"], list) for plugin in value["plugins"])
            and _has_keys(value["executors"], EXECUTOR_KEYS))


class PluginIndex:
    """The index file and this process's context and installed distributions, read once."""

    def __init__(self, path: str):
        self.path = path
        self.key = context_key()
        self.installed = installed_stamps()

    @classmethod
    def open(cls) -> PluginIndex | None:
        """The index in the cache folder, or ``None`` when strict or traced loading is asked
        for or the cache folder cannot be used."""
        if any(os.environ.get(name) for name in BYPASS_VARIABLES):
            return None
        from hwaccel.errors import HwaccelError
        from hwaccel.kit.paths import cache_dir

        try:
            return cls(os.path.join(cache_dir(), FILE_NAME))
        except HwaccelError:  # an unusable cache folder: list without the index
            return None

    def _entries(self) -> dict[str, dict]:
        """The stored entries by context; none when the file is missing, corrupt or foreign."""
        try:
            with open(self.path, encoding="utf-8") as file:
                data = json.load(file)
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def lookup(self) -> dict | None:
        """The stored listing of this context when nothing it depends on changed, else
        ``None``."""
        entry = self._entries().get(self.key)
        try:
            if entry["installed"] != self.installed:
                return None
            if any(_stamp(path) != [mtime, size] for path, mtime, size in entry["files"]):
                return None
            listing = entry["listing"]
        except (KeyError, TypeError, ValueError):  # no entry, or one of another shape
            return None
        return listing if _is_listing(listing) else None

    def store(self, listing: dict) -> None:
        """Store ``listing`` for this context, unless a plugin in it failed or is unavailable;
        replace the file atomically, and leave it be when it cannot be written."""
        if any(plugin["status"] not in STORED_STATUSES for plugin in listing["plugins"]):
            return
        entries = self._entries()
        entries.pop(self.key, None)
        entries[self.key] = {"installed": self.installed, "files": loaded_module_files(),
                             "listing": listing}
        kept = dict(list(entries.items())[-KEPT:])
        temporary = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as file:
                json.dump({"format": FORMAT, "entries": kept}, file)
            os.replace(temporary, self.path)
        except OSError:
            try:
                os.unlink(temporary)
            except OSError:
                pass
