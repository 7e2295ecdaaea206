"""The pipelines' catalogues of well-known models, for recommendations by task.

A pipeline plugin may ship ``catalogue.json`` in its package: hub ids of well-known models,
the tasks each checkpoint is published for (Hugging Face pipeline task names), and its
published config written as the installed transformers' default config of ``model_type``
plus the keys that differ. No result is recorded there: sizes are computed from the config
(parameters on the meta device), so a model that is not on this machine can still be
estimated, offline. The file's shape::

    {"format": 1, "models": [{"id": "openai-community/gpt2", "tasks": ["text-generation"],
                              "model_type": "gpt2", "architecture": "GPT2LMHeadModel",
                              "config": {}}]}

A broken catalogue is reported as a warning and skipped; the others still count.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from hwaccel.plugins import HookError, Plugins
from hwaccel.types import ModelRef

CATALOGUE_FILE = "catalogue.json"
_FORMAT = 1


@dataclass(frozen=True)
class CatalogueEntry:
    """One well-known model as a pipeline's catalogue lists it."""

    id: str
    tasks: tuple[str, ...]
    model_type: str
    architecture: str
    config: dict[str, Any] = field(default_factory=dict)
    plugin: str = ""

    def ref(self) -> ModelRef:
        """A reference that carries the published config (no files: not loadable here)."""
        config = {**self.config, "model_type": self.model_type,
                  "architectures": [self.architecture]}
        return ModelRef(spec=self.id, kind="hub", config=config, model_type=self.model_type,
                        architectures=(self.architecture,), signal="config",
                        evidence=f"published config from the catalogue of plugin "
                                 f"{self.plugin!r} (not in the local Hugging Face cache)")


def _entries(plugin: str, data: Any) -> list[CatalogueEntry]:
    if not isinstance(data, dict) or data.get("format") != _FORMAT \
            or not isinstance(data.get("models"), list):
        raise ValueError(f"not a catalogue of format {_FORMAT} (a 'models' list)")
    entries = []
    for item in data["models"]:
        if not isinstance(item, dict):
            raise ValueError("a catalogue entry is not an object")
        try:
            entries.append(CatalogueEntry(
                id=str(item["id"]), tasks=tuple(str(t) for t in item["tasks"]),
                model_type=str(item["model_type"]), architecture=str(item["architecture"]),
                config=dict(item.get("config") or {}), plugin=plugin))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"entry {item.get('id', '?')!r}: missing or bad {exc}") from None
    return entries


def load_catalogue(plugins: Plugins) -> tuple[list[CatalogueEntry], list[HookError]]:
    """Every loaded pipeline's catalogue entries, and one error per broken catalogue."""
    entries: list[CatalogueEntry] = []
    errors: list[HookError] = []
    for record in plugins.loaded():
        if record.kind != "pipeline" or not record.module:
            continue
        package = record.module.split(":")[0]
        try:
            resource = files(package).joinpath(CATALOGUE_FILE)
            if not resource.is_file():
                continue
            entries += _entries(record.name, json.loads(resource.read_text(encoding="utf-8")))
        except (OSError, ValueError, ModuleNotFoundError) as exc:
            errors.append(HookError(record.name, CATALOGUE_FILE, str(exc).splitlines()[0]))
    return entries, errors


def find_entry(entries: list[CatalogueEntry], model_id: str) -> CatalogueEntry | None:
    """The entry of hub id ``model_id`` (case-insensitive) among ``entries``.

    A bare name (no ``/``) that no entry has as its id is a legacy hub id from before the
    hub moved such models under organisations (``bert-base-uncased`` is now
    ``google-bert/bert-base-uncased``): it matches the entry whose id ends in ``/name``,
    when exactly one does.

    :raises ModelReferenceError: a bare name that several entries end in (the candidates
        are named; none is picked).
    """
    wanted = model_id.lower()
    exact = next((e for e in entries if e.id.lower() == wanted), None)
    if exact is not None or "/" in wanted or not wanted:
        return exact
    renamed = [e for e in entries if e.id.lower().rsplit("/", 1)[-1] == wanted]
    if len(renamed) > 1:
        from hwaccel.errors import ModelReferenceError

        raise ModelReferenceError(
            f"{model_id!r} is ambiguous: the pipelines' catalogues list "
            f"{', '.join(sorted(e.id for e in renamed))}; name one of them")
    return renamed[0] if renamed else None


def catalogue_entry(plugins: Plugins, model_id: str) -> CatalogueEntry | None:
    """The catalogue entry of a hub id, or of a legacy bare name (see :func:`find_entry`),
    if a pipeline lists it."""
    return find_entry(load_catalogue(plugins)[0], model_id)


def with_catalogue_config(ref: ModelRef, plugins: Plugins) -> ModelRef:
    """``ref`` itself, or for a hub id with no local files its catalogue entry's reference
    (its published config), so that it can be classified from a config and estimated.
    The reference keeps the name it was asked by (a legacy bare name stays as given); its
    evidence names the catalogue id it resolved to.

    :raises ModelReferenceError: a bare name that several catalogue ids end in.
    """
    if ref.kind != "hub" or ref.config is not None:
        return ref
    entry = catalogue_entry(plugins, ref.spec)
    if entry is None:
        return ref
    found = entry.ref()
    evidence = found.evidence if entry.id.lower() == ref.spec.lower() else \
        f"{found.evidence}, as {entry.id!r} (the hub's current id of {ref.spec!r})"
    return dataclasses.replace(found, spec=ref.spec, model_class=ref.model_class,
                               tasks=ref.tasks, evidence=evidence)
